"""/channel/messagesync (reference §3) and the message lookup endpoints."""

import base64

import pytest

from tests.api.helpers import b64, send_body


async def fill(api, n, channel_id="g1", channel_type=2, from_uid="alice"):
    replies = []
    for i in range(n):
        status, body = await api.post(
            "/message/send",
            send_body(
                channel_id=channel_id,
                channel_type=channel_type,
                from_uid=from_uid,
                payload=f"m{i + 1}",
                client_msg_no=f"c{i + 1}",
            ),
        )
        assert status == 200, body
        replies.append(body["data"])
    return replies


async def sync(api, **fields):
    body = {"login_uid": "alice", "channel_id": "g1", "channel_type": 2, **fields}
    status, reply = await api.post("/channel/messagesync", body)
    assert status == 200, reply
    return reply


def seqs(reply):
    return [m["message_seq"] for m in reply["messages"]]


@pytest.mark.parametrize(
    ("fields", "expected", "more"),
    [
        ({"limit": 3}, [8, 9, 10], 1),
        ({"limit": 3, "pull_mode": 1}, [8, 9, 10], 1),
        ({"limit": 20}, list(range(1, 11)), 0),
        (
            {"start_message_seq": 3, "end_message_seq": 6, "pull_mode": 1, "limit": 10},
            [3, 4, 5],
            0,
        ),
        ({"start_message_seq": 3, "pull_mode": 1, "limit": 4}, [3, 4, 5, 6], 1),
        (
            {
                "start_message_seq": 8,
                "end_message_seq": 50,
                "pull_mode": 1,
                "limit": 10,
            },
            [8, 9, 10],
            0,
        ),
        ({"start_message_seq": 11, "pull_mode": 1, "limit": 10}, [], 0),
        ({"start_message_seq": 6, "end_message_seq": 2, "limit": 10}, [3, 4, 5, 6], 0),
        ({"start_message_seq": 6, "limit": 2}, [5, 6], 1),
        ({"start_message_seq": 99, "limit": 3}, [8, 9, 10], 1),
        ({"start_message_seq": 2, "end_message_seq": 6, "limit": 10}, [], 0),
        ({"start_message_seq": 6, "end_message_seq": 2, "limit": 0}, [], 1),
        ({"limit": 0}, [], 1),
        ({"start_message_seq": 1, "pull_mode": 1, "limit": 0}, list(range(1, 11)), 0),
    ],
)
async def test_pull_modes(api, fields, expected, more):
    await fill(api, 10)
    reply = await sync(api, **fields)
    assert seqs(reply) == expected
    assert reply["more"] == more
    assert reply["start_message_seq"] == fields.get("start_message_seq", 0)
    assert reply["end_message_seq"] == fields.get("end_message_seq", 0)
    assert reply["truncated"] is False


async def test_paging_up_ends_and_covers_every_seq(api):
    await fill(api, 25)
    got, start, calls = [], 1, 0
    while True:
        calls += 1
        reply = await sync(api, start_message_seq=start, pull_mode=1, limit=10)
        got += seqs(reply)
        if not reply["more"]:
            break
        start = got[-1] + 1
    assert got == list(range(1, 26))
    assert calls <= 25 // 10 + 1


async def test_never_written_channel(api):
    reply = await sync(api, channel_id="nothing", limit=10)
    assert reply == {
        "start_message_seq": 0,
        "end_message_seq": 0,
        "more": 0,
        "messages": [],
        "epoch": "",
        "truncated": False,
        "first_message_seq": 0,
    }


async def test_message_fields_are_v2_message_resp(api):
    sent = (await fill(api, 1))[0]
    msg = (await sync(api, limit=1))["messages"][0]
    assert set(msg) >= {
        "header",
        "setting",
        "message_id",
        "message_idstr",
        "client_msg_no",
        "message_seq",
        "from_uid",
        "channel_id",
        "channel_type",
        "expire",
        "timestamp",
        "payload",
    }
    assert msg["message_id"] == sent["message_id"]
    assert msg["message_idstr"] == str(sent["message_id"])
    assert base64.b64decode(msg["payload"]) == b"m1"
    assert msg["header"] == {"no_persist": 0, "red_dot": 0, "sync_once": 0}
    assert 1_700_000_000 < msg["timestamp"] < 10_000_000_000  # seconds, not ms
    assert msg["from_uid"] == "alice" and msg["channel_id"] == "g1"
    assert "topic" not in msg


async def test_epoch_is_set_at_creation_and_stable(api):
    await fill(api, 2)
    first = (await sync(api, limit=1))["epoch"]
    await fill(api, 1)
    assert first and (await sync(api, limit=1))["epoch"] == first


async def test_person_channel_sync_from_both_sides(api):
    await fill(api, 2, channel_id="bob", channel_type=1, from_uid="alice")
    for viewer, other in (("alice", "bob"), ("bob", "alice")):
        reply = await sync(
            api, login_uid=viewer, channel_id=other, channel_type=1, limit=10
        )
        assert seqs(reply) == [1, 2]
        # v2: a message shows the party that is not the sender
        assert {m["channel_id"] for m in reply["messages"]} == {"bob"}


async def test_system_sender_is_shown_empty(api):
    await api.post("/message/send", send_body())
    msg = (await sync(api, limit=1))["messages"][0]
    assert msg["from_uid"] == ""


@pytest.mark.parametrize(
    "fields",
    [
        {"login_uid": ""},
        {"limit": -1},
        {"start_message_seq": -5},
        {"pull_mode": 2},
        {"channel_type": 77},
        {"channel_id": ""},
        {"limit": "ten"},
    ],
)
async def test_bad_sync_requests_are_400(api, fields):
    body = {
        "login_uid": "alice",
        "channel_id": "g1",
        "channel_type": 2,
        "limit": 5,
        **fields,
    }
    status, reply = await api.post("/channel/messagesync", body)
    assert status == 400 and reply["status"] == 400


async def test_limit_is_capped_at_ten_thousand(api):
    await fill(api, 3)
    assert seqs(await sync(api, limit=10**9)) == [1, 2, 3]


async def test_retention_gap_is_reported_not_silent(api, redis, settings):
    from broker.keys import Keys

    await fill(api, 10)
    log = Keys(prefix=settings.key_prefix, shards=settings.shards).channel(2, "g1").log
    await redis.xtrim(
        log, minid="6-0", approximate=False
    )  # retention removed seqs 1..5
    reply = await sync(api, start_message_seq=1, pull_mode=1, limit=10)
    assert reply["truncated"] is True and reply["first_message_seq"] == 6
    assert seqs(reply) == [6, 7, 8, 9, 10]
    exact = await sync(api, start_message_seq=7, pull_mode=1, limit=10)
    assert exact["truncated"] is False and seqs(exact) == [7, 8, 9, 10]


async def test_max_message_seq_and_last_message(api):
    status, body = await api.get(
        "/channel/max_message_seq", channel_id="g1", channel_type=2
    )
    assert (status, body) == (200, {"message_seq": 0})
    status, body = await api.get(
        "/channel/last_message", channel_id="g1", channel_type=2, login_uid="alice"
    )
    assert status == 404 and body["status"] == 404
    await fill(api, 3)
    status, body = await api.get(
        "/channel/max_message_seq", channel_id="g1", channel_type=2
    )
    assert body == {"message_seq": 3}
    status, body = await api.get(
        "/channel/last_message", channel_id="g1", channel_type=2, login_uid="alice"
    )
    assert status == 200 and body["message_seq"] == 3


async def test_person_max_seq_by_login_uid_or_fake_id(api):
    from broker.channels import person_channel_id

    await fill(api, 2, channel_id="bob", channel_type=1, from_uid="alice")
    _, body = await api.get(
        "/channel/max_message_seq", channel_id="bob", channel_type=1, login_uid="alice"
    )
    assert body == {"message_seq": 2}
    _, body = await api.get(
        "/channel/max_message_seq",
        channel_id=person_channel_id("alice", "bob"),
        channel_type=1,
    )
    assert body == {"message_seq": 2}
    status, _ = await api.get(
        "/channel/max_message_seq", channel_id="bob", channel_type=1
    )
    assert status == 400


async def test_messages_lookup_is_a_union(api):
    sent = await fill(api, 6)
    status, body = await api.post(
        "/messages",
        {
            "login_uid": "alice",
            "channel_id": "g1",
            "channel_type": 2,
            "message_seqs": [1, 99],
            "message_ids": [sent[2]["message_id"], 12345],
            "client_msg_nos": ["c5", "nope"],
        },
    )
    assert status == 200
    assert seqs(body) == [1, 3, 5]
    assert body["more"] == 0 and body["start_message_seq"] == 0


async def test_message_by_id_and_client_msg_no(api):
    sent = await fill(api, 3)
    status, body = await api.post(
        "/message",
        {
            "login_uid": "alice",
            "channel_id": "g1",
            "channel_type": 2,
            "message_id": sent[1]["message_id"],
        },
    )
    assert status == 200 and body["message_seq"] == 2
    status, body = await api.post(
        "/message",
        {
            "login_uid": "alice",
            "channel_id": "g1",
            "channel_type": 2,
            "client_msg_no": "c3",
        },
    )
    assert body["message_seq"] == 3
    status, body = await api.post(
        "/message",
        {"login_uid": "alice", "channel_id": "g1", "channel_type": 2, "message_id": 42},
    )
    assert status == 404
    status, body = await api.post(
        "/message", {"login_uid": "alice", "channel_id": "g1", "channel_type": 2}
    )
    assert status == 400
    status, body = await api.get(
        "/message/byclientmsgno", channel_id="g1", channel_type=2, client_msg_no="c2"
    )
    assert status == 200 and body["message_seq"] == 2
    status, body = await api.get(
        "/message/byclientmsgno", channel_id="g1", channel_type=2
    )
    assert status == 400


async def test_command_sync_is_always_empty_and_ack_ok(api):
    await api.post("/message/send", send_body(header={"sync_once": 1}))
    status, body = await api.post("/message/sync", {"uid": "alice", "limit": 10})
    assert (status, body) == (200, [])
    status, body = await api.post(
        "/message/syncack", {"uid": "alice", "last_message_seq": 3}
    )
    assert (status, body) == (200, {"status": 200})


async def test_payload_round_trips_binary(api):
    raw = bytes(range(256))
    await api.post(
        "/message/send", {"channel_id": "g1", "channel_type": 2, "payload": b64(raw)}
    )
    msg = (await sync(api, limit=1))["messages"][0]
    assert base64.b64decode(msg["payload"]) == raw
