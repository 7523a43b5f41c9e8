"""POST /message/send and /message/sendbatch against a real Redis."""

import io

import anyio
import msgspec
import pytest

from broker.channels import person_channel_id
from broker.keys import Keys
from broker.protocol import LiveMessage, StoredMessage
from tests.api.helpers import b64, send_body


def keys_of(settings) -> Keys:
    return Keys(prefix=settings.key_prefix, shards=settings.shards)


async def stream_len(redis, settings, channel_type, channel_id) -> int:
    return await redis.xlen(keys_of(settings).channel(channel_type, channel_id).log)


async def test_persistent_send_is_stored_with_dense_seqs(api, redis, settings):
    replies = []
    for i in range(3):
        status, body = await api.post("/message/send", send_body(payload=f"m{i}"))
        assert status == 200, body
        replies.append(body["data"])
    assert [r["message_seq"] for r in replies] == [1, 2, 3]
    assert all(r["persisted"] is True for r in replies)
    assert all(r["message_idstr"] == str(r["message_id"]) for r in replies)
    assert len({r["message_id"] for r in replies}) == 3
    assert all(len(r["client_msg_no"]) == 33 for r in replies)  # 32 hex + "0"

    channel = keys_of(settings).channel(2, "g1")
    entries = await redis.xrange(channel.log)
    assert [e[0] for e in entries] == [b"1-0", b"2-0", b"3-0"]
    stored = msgspec.msgpack.decode(entries[0][1][b"m"], type=StoredMessage)
    assert stored.payload == b"m0"
    assert stored.from_uid == "____system"
    # the dispatch entry is written by the same script
    dispatch = await redis.xrange(keys_of(settings).dispatch(channel.shard))
    assert [int(e[1][b"s"]) for e in dispatch] == [1, 2, 3]


async def test_retry_with_same_client_msg_no_returns_first_reply(api, redis, settings):
    body = send_body(from_uid="alice", client_msg_no="cmn-1")
    status, first = await api.post("/message/send", body)
    assert status == 200
    status, again = await api.post("/message/send", body)
    assert status == 200
    assert again["data"] == first["data"]
    assert await stream_len(redis, settings, 2, "g1") == 1
    # another sender may use the same client_msg_no
    status, other = await api.post(
        "/message/send", send_body(from_uid="bob", client_msg_no="cmn-1")
    )
    assert other["data"]["message_seq"] == 2


async def test_reused_client_msg_no_with_other_payload_is_a_conflict(
    api, redis, settings
):
    await api.post(
        "/message/send", send_body(payload="a", from_uid="u", client_msg_no="c")
    )
    status, body = await api.post(
        "/message/send", send_body(payload="b", from_uid="u", client_msg_no="c")
    )
    assert status == 409
    assert body["status"] == 409 and body["msg"]
    assert await stream_len(redis, settings, 2, "g1") == 1


async def test_fifty_concurrent_senders_get_dense_seqs(api, redis, settings):
    results = []

    async def sender(i: int) -> None:
        for j in range(4):
            status, body = await api.post(
                "/message/send",
                send_body(channel_id="hot", from_uid=f"u{i}", payload=f"{i}-{j}"),
            )
            assert status == 200, body
            results.append(body["data"]["message_seq"])

    async with anyio.create_task_group() as tg:
        for i in range(50):
            tg.start_soon(sender, i)
    assert sorted(results) == list(range(1, 201))
    assert await stream_len(redis, settings, 2, "hot") == 200


async def test_person_message_is_stored_under_the_fake_id(api, redis, settings):
    status, body = await api.post(
        "/message/send", send_body(channel_id="bob", channel_type=1, from_uid="alice")
    )
    assert status == 200
    fake = person_channel_id("alice", "bob")
    assert await stream_len(redis, settings, 1, fake) == 1
    # bob answering lands in the same channel
    await api.post(
        "/message/send", send_body(channel_id="alice", channel_type=1, from_uid="bob")
    )
    assert await stream_len(redis, settings, 1, fake) == 2


async def test_red_dot_sets_the_badge_bit(api, redis, settings):
    await api.post("/message/send", send_body(header={"red_dot": 1}))
    await api.post("/message/send", send_body(header={"red_dot": 0}))
    badge = keys_of(settings).channel(2, "g1").badge
    assert await redis.getbit(badge, 1) == 1
    assert await redis.getbit(badge, 2) == 0


@pytest.mark.parametrize(
    ("header", "kind"),
    [
        ({"no_persist": 1}, "transient"),
        ({"sync_once": 1}, "command"),
        ({"sync_once": 1, "no_persist": 1}, "command"),
    ],
)
async def test_transient_and_command_messages_are_published_not_stored(
    api, redis, settings, header, kind
):
    keys = keys_of(settings)
    shard = keys.channel(2, "g1").shard
    pubsub = redis.pubsub()
    await pubsub.subscribe(keys.live(shard))
    await pubsub.get_message(timeout=1)  # subscribe confirmation
    status, body = await api.post("/message/send", send_body(header=header))
    assert status == 200
    assert body["data"]["message_seq"] == 0
    assert body["data"]["persisted"] is False
    assert body["data"]["message_id"] > 0
    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=2)
    await pubsub.aclose()
    live = msgspec.msgpack.decode(msg["data"], type=LiveMessage)
    assert live.message.payload == b"hello"
    assert live.message.sync_once == header.get("sync_once", 0)
    assert await stream_len(redis, settings, 2, "g1") == 0
    assert await redis.xlen(keys.dispatch(shard)) == 0
    status, synced = await api.post(
        "/channel/messagesync",
        {"login_uid": "x", "channel_id": "g1", "channel_type": 2, "limit": 10},
    )
    assert synced["messages"] == []


async def test_command_to_explicit_subscribers(api, redis, settings):
    status, body = await api.post(
        "/message/send",
        {"header": {"sync_once": 1}, "subscribers": ["a", "b"], "payload": b64("cmd")},
    )
    assert status == 200, body
    assert body["data"]["persisted"] is False


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (send_body(payload=""), "payload"),
        ({"channel_id": "g1", "channel_type": 2}, "payload"),
        ({"channel_id": "g1", "channel_type": 2, "payload": "%%%not-base64"}, "base64"),
        (send_body(channel_type=0), "channel_type"),
        (send_body(channel_type=99), "channel_type"),
        (send_body(channel_type="two"), "channel_type"),
        (send_body(channel_id=""), "channel_id"),
        (send_body(channel_id="a@b"), "channel_id"),
        (send_body(channel_id="a{b}"), "channel_id"),
        (send_body(channel_id="a\nb"), "channel_id"),
        (send_body(channel_id="x" * 129), "channel_id"),
        (send_body(from_uid="e#vil"), "from_uid"),
        (send_body(client_msg_no="x" * 129), "client_msg_no"),
        (send_body(subscribers=["a"]), "subscribers"),
        (
            {
                "header": {"sync_once": 1},
                "subscribers": ["a"],
                "channel_id": "g",
                "payload": b64("x"),
            },
            "either",
        ),
        (
            {"header": {"sync_once": 1}, "subscribers": [], "payload": b64("x")},
            "subscribers",
        ),
        (send_body(expire=-1), "negative"),
        ([1, 2, 3], "object"),
    ],
)
async def test_bad_sends_are_400_and_store_nothing(
    api, redis, settings, body, fragment
):
    status, reply = await api.post("/message/send", body)
    assert status == 400, reply
    assert reply["status"] == 400
    assert fragment.lower() in reply["msg"].lower()
    assert await stream_len(redis, settings, 2, "g1") == 0


async def test_malformed_json_and_invalid_utf8_are_400(api):
    for raw in [b"{not json", b'{"payload": "\xff"}', b""]:
        resp = await api.client.post(
            "/message/send", data=raw, headers={"token": api.token}
        )
        assert resp.status == 400
        body = await resp.json()
        assert body["status"] == 400 and body["msg"]


async def test_payload_over_the_limit_is_413(api, redis, settings):
    too_big = b"x" * (settings.max_payload + 1)
    status, body = await api.post("/message/send", send_body(payload=too_big))
    assert status == 413 and body["status"] == 413
    exact = b"x" * settings.max_payload
    status, _ = await api.post("/message/send", send_body(payload=exact))
    assert status == 200
    assert await stream_len(redis, settings, 2, "g1") == 1


async def test_body_over_one_mib_is_413(api):
    resp = await api.client.post(
        "/message/send",
        data=io.BytesIO(b"{" + b" " * (1 << 20) + b"}"),
        headers={"token": api.token, "Content-Type": "application/json"},
    )
    assert resp.status == 413
    assert (await resp.json())["status"] == 413


@pytest.mark.parametrize("token", [None, "", "wrong-token-wrong-token", "x"])
async def test_missing_or_wrong_token_is_401(api, redis, settings, token):
    headers = {} if token is None else {"token": token}
    resp = await api.client.post("/message/send", json=send_body(), headers=headers)
    assert resp.status == 401
    body = await resp.json()
    assert body["status"] == 401 and body["msg"]
    assert await stream_len(redis, settings, 2, "g1") == 0


async def test_token_with_one_byte_changed_is_401(api):
    changed = api.token[:-1] + ("A" if api.token[-1] != "A" else "B")
    resp = await api.client.post(
        "/message/send", json=send_body(), headers={"token": changed}
    )
    assert resp.status == 401


async def test_health_needs_no_token(api):
    resp = await api.client.get("/health")
    assert resp.status == 200
    assert (await resp.json())["status"] == "ok"


async def test_unknown_route_is_json_404(api):
    status, body = await api.post("/no/such/route", {})
    assert status == 404 and body["status"] == 404


async def test_sendbatch_sends_one_person_message_per_uid(api, redis, settings):
    status, body = await api.post(
        "/message/sendbatch",
        {"from_uid": "sys1", "subscribers": ["u1", "u2", "u3"], "payload": b64("hey")},
    )
    assert status == 200, body
    assert body == {"fail_uids": [], "reason": []}
    for uid in ("u1", "u2", "u3"):
        assert await stream_len(redis, settings, 1, person_channel_id("sys1", uid)) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"subscribers": ["u1"], "payload": b64("x")},
        {"from_uid": "s", "subscribers": [], "payload": b64("x")},
        {"from_uid": "s", "subscribers": ["u1"], "payload": ""},
        {"from_uid": "s", "subscribers": ["bad@uid"], "payload": b64("x")},
    ],
)
async def test_sendbatch_validation(api, body):
    status, reply = await api.post("/message/sendbatch", body)
    assert status == 400 and reply["status"] == 400


async def test_list_over_the_limit_is_400(api):
    status, body = await api.post(
        "/message/sendbatch",
        {
            "from_uid": "s",
            "subscribers": [f"u{i}" for i in range(10_001)],
            "payload": b64("x"),
        },
    )
    assert status == 400 and "10000" in body["msg"]


async def test_banned_channel_refuses_with_reason(api, redis, settings):
    meta = keys_of(settings).channel(2, "g1").meta
    await redis.hset(meta, "ban", "1")
    status, body = await api.post("/message/send", send_body())
    assert status == 403
    assert body["reason_code"] == 19
    await redis.hset(meta, mapping={"ban": "0", "disband": "1"})
    status, body = await api.post("/message/send", send_body())
    assert status == 403 and body["reason_code"] == 24
    assert await stream_len(redis, settings, 2, "g1") == 0


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/user/device_quit", {"uid": "u1", "device_flag": 2**70}),
        ("/user/device_quit", {"uid": "u1", "device_flag": -2}),
        ("/user/token", {"uid": "u1", "token": "t", "device_flag": 256}),
        ("/user/token", {"uid": "u1", "token": "t", "device_level": 2}),
    ],
)
async def test_device_flags_out_of_range_are_400(api, path, body):
    # found by the schemathesis contract run: a huge flag used to be a 500
    status, reply = await api.post(path, body)
    assert status == 400
    assert reply["status"] == 400
