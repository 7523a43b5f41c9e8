"""Raw-WebSocket tests of every method and of the connection rules."""

from __future__ import annotations

import base64
import itertools
import json
import time

import anyio
import pytest
from aiohttp import WSMsgType

from broker.gateway.session import CloseCode
from tests.gateway.conftest import RawClient


def b64(value: object) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


def send_params(channel_id: str, channel_type: int = 1, **extra) -> dict:
    return {
        "channelId": channel_id,
        "channelType": channel_type,
        "clientMsgNo": extra.pop("clientMsgNo", f"c{time.monotonic_ns()}"),
        "payload": extra.pop("payload", b64({"type": 1, "content": "x"})),
        "header": extra.pop("header", {"redDot": True}),
        **extra,
    }


async def test_ping_answers_result_null(node):
    alice = await node.login("alice")
    for params in ({}, None):
        reply = await alice.call("ping", params)
        assert reply == {"jsonrpc": "2.0", "id": reply["id"], "result": None}
    await alice.send_json({"id": "n", "method": "ping", "params": None})
    assert await alice.next_frame() == {"jsonrpc": "2.0", "id": "n", "result": None}


async def test_send_result_and_recv_shape(node, fanout, redis):
    alice, bob = await node.login("alice"), await node.login("bob")
    reply = await alice.call(
        "send", send_params("bob", clientMsgNo="m1", fromUid="mallory")
    )
    result = reply["result"]
    assert result["reasonCode"] == 1
    assert result["messageSeq"] == 1
    assert result["clientMsgNo"] == "m1"
    assert result["persisted"] is True
    assert isinstance(result["messageId"], str)
    recv = (await bob.notification("recv"))["params"]
    assert recv["header"] == {
        "noPersist": False,
        "redDot": True,
        "syncOnce": False,
        "dup": False,
        "end": False,
    }
    assert recv["messageId"] == result["messageId"]
    assert recv["messageSeq"] == 1
    assert recv["fromUid"] == "alice"  # from the connection, never the frame
    assert recv["channelId"] == "alice"
    assert json.loads(base64.b64decode(recv["payload"])) == {"type": 1, "content": "x"}
    assert abs(recv["timestamp"] - time.time()) < 5  # seconds
    # The same client_msg_no again: the first result, nothing stored twice.
    again = await alice.call("send", send_params("bob", clientMsgNo="m1"))
    assert again["result"]["messageId"] == result["messageId"]
    sync = await bob.call(
        "channel.messagesync",
        {"channel_id": "alice", "channel_type": 1, "limit": 10},
    )
    assert [m["message_seq"] for m in sync["result"]["messages"]] == [1]
    assert sync["result"]["messages"][0]["from_uid"] == "alice"


async def test_senders_other_devices_get_the_recv(node, fanout):
    phone = await node.login("alice", device_flag=0)
    desktop = await node.login("alice", device_flag=2)
    bob = await node.login("bob")
    reply = await desktop.call("send", send_params("bob"))
    assert reply["result"]["reasonCode"] == 1
    mine = (await phone.notification("recv"))["params"]
    assert mine["channelId"] == "bob"  # the peer, seen from the sender's side
    assert mine["header"]["redDot"] is False  # own messages never raise unread
    theirs = (await bob.notification("recv"))["params"]
    assert theirs["channelId"] == "alice"
    await anyio.sleep(0.3)
    assert [n for n in desktop.notes if n["method"] == "recv"] == []


async def test_command_and_transient_messages_are_live_only(node, fanout):
    alice, bob = await node.login("alice"), await node.login("bob")
    for header in ({"syncOnce": True}, {"noPersist": True}):
        reply = await alice.call("send", send_params("bob", header=header))
        assert reply["result"]["reasonCode"] == 1
        assert reply["result"]["messageSeq"] == 0
        assert reply["result"]["persisted"] is False
        recv = (await bob.notification("recv"))["params"]
        assert recv["messageSeq"] == 0
        assert recv["header"]["syncOnce"] is header.get("syncOnce", False)
    sync = await bob.call(
        "channel.messagesync", {"channel_id": "alice", "channel_type": 1, "limit": 10}
    )
    assert sync["result"]["messages"] == []


async def test_send_refusals_carry_reason_codes(node, redis):
    alice = await node.login("alice")
    bad64 = await alice.call("send", send_params("bob", payload="%%%not base64"))
    assert bad64["result"]["reasonCode"] == 9
    kind = await alice.call("send", send_params("bob", channel_type=77))
    assert kind["result"]["reasonCode"] == 23
    keys = node.services.keys
    await redis.hset(keys.channel(2, "closed").meta, "ban", "1")
    await redis.sadd(keys.channel(2, "closed").members, "alice")
    banned = await alice.call("send", send_params("closed", channel_type=2))
    assert banned["result"]["reasonCode"] == 19
    empty = await alice.call("send", send_params("bob", payload=""))
    assert empty["result"]["reasonCode"] == 11
    assert "payload" in empty["result"]["reason"]
    assert await redis.exists(keys.channel(2, "closed").log) == 0


async def test_send_rate_limit_gives_reason_22(node_settings, redis):
    from tests.gateway.conftest import gateway_settings, start_node

    settings = gateway_settings(node_settings, ws_send_rate=5.0, ws_send_burst=10)
    async with start_node(settings) as node:
        alice = await node.login("alice")
        codes = []
        for i in range(40):
            reply = await alice.call("send", send_params("bob", clientMsgNo=f"r{i}"))
            codes.append(reply["result"]["reasonCode"])
        accepted = codes.count(1)
        assert 10 <= accepted <= 13, codes
        assert set(codes) == {1, 22}
        head = await redis.hget(
            node.services.keys.channel(1, "alice@bob").meta, "seq"
        ) or await redis.hget(node.services.keys.channel(1, "bob@alice").meta, "seq")
        assert int(head) == accepted


async def test_unacked_messages_are_resent_with_backoff_then_given_up(
    node_settings, redis
):
    from tests.gateway.conftest import gateway_settings, start_node
    from tests.gateway.fanout import FanoutHelper

    settings = gateway_settings(node_settings, ws_retry_ms=100)
    async with start_node(settings) as node:
        helper = FanoutHelper(redis, node.services.keys, 500)
        alice, bob = await node.login("alice"), await node.login("bob")
        sent = await alice.call("send", send_params("bob"))
        message_id = sent["result"]["messageId"]
        await helper.pump()
        arrivals = []
        with anyio.move_on_after(4.5):
            while True:
                recv = await bob.notification("recv", timeout=5)
                assert recv["params"]["messageId"] == message_id
                arrivals.append(time.monotonic())
        # The delivery and 5 re-sends after 0.1, 0.2, 0.4, 0.8, 1.6 s: back-off.
        assert len(arrivals) == 6
        gaps = [b - a for a, b in itertools.pairwise(arrivals)]
        assert gaps[-1] > 2.5 * gaps[0], gaps
        session = next(s for s in node.gateway.sessions if s.uid == "bob")
        assert session.pending == {}


async def test_recvack_stops_resending(node, fanout):
    alice, bob = await node.login("alice"), await node.login("bob")
    await alice.call("send", send_params("bob"))
    recv = (await bob.notification("recv"))["params"]
    await bob.send_json(
        {
            "method": "recvack",
            "params": {
                "header": recv["header"],
                "messageId": recv["messageId"],
                "messageSeq": recv["messageSeq"],
            },
        }
    )
    with anyio.move_on_after(1.5):
        await bob.notification("recv", timeout=2)
        pytest.fail("an acknowledged message was sent again")


async def test_disconnect_request_closes_normally(node):
    alice = await node.login("alice")
    reply = await alice.call("disconnect", {"reasonCode": 0})
    assert reply["result"] is None
    assert await alice.closed() == CloseCode.NORMAL
    with anyio.fail_after(2):
        while await node.services.redis.hlen(node.services.keys.connections("alice")):
            await anyio.sleep(0.02)


async def test_messagesync_checks_the_reader(node, redis):
    keys = node.services.keys
    mallory = await node.login("mallory")
    from broker.channels import person_channel_id

    other = await mallory.call(
        "channel.messagesync",
        {
            "channel_id": person_channel_id("alice", "bob"),
            "channel_type": 1,
            "limit": 10,
        },
    )
    assert other["error"]["code"] == 403
    group = await mallory.call(
        "channel.messagesync", {"channel_id": "g9", "channel_type": 2, "limit": 10}
    )
    assert group["error"]["code"] == 403
    await redis.sadd(keys.channel(2, "g9").members, "mallory")
    group = await mallory.call(
        "channel.messagesync", {"channel_id": "g9", "channel_type": 2, "limit": 10}
    )
    assert group["result"]["messages"] == []
    bad = await mallory.call(
        "channel.messagesync", {"channel_id": "g9", "channel_type": 2, "limit": -1}
    )
    assert bad["error"]["code"] == 400


async def test_conversation_sync_over_the_socket(node, redis):
    from broker.channels import person_channel_id

    keys = node.services.keys
    status, _ = await node.api.post(
        "/message/send",
        {
            "from_uid": "bob",
            "channel_id": "carol",
            "channel_type": 1,
            "payload": "aGk=",
        },
    )
    assert status == 200
    # carol's conversation as the workers record it (design-notes "Conversations").
    member = f"1:{person_channel_id('bob', 'carol')}"
    await redis.hset(keys.conversations("carol"), member, "0,0,0")
    await redis.zadd(keys.recent("carol"), {member: int(time.time() * 1000)})
    carol = await node.login("carol")
    reply = await carol.call("conversation.sync", {"version": 0, "msg_count": 1})
    [conv] = reply["result"]
    assert conv["channel_id"] == "bob"
    assert conv["last_msg_seq"] == 1
    # The uid comes from the connection: alice cannot read carol's list.
    alice = await node.login("alice")
    reply = await alice.call("conversation.sync", {"uid": "carol", "msg_count": 1})
    assert reply["result"] == []
    bad = await alice.call("conversation.sync", {"version": "x"})
    assert bad["error"]["code"] == -32602


# -- malformed frames: an error frame (connection stays) or a close, never a crash ---
ERROR_FRAMES = [
    ("{not json", -32700),
    ('{"id": ["x"], "method": "ping"}', -32600),
    ('{"id": "1", "method": 7}', -32600),
    ('{"jsonrpc": "1.0", "id": "1", "method": "ping"}', -32600),
    ('{"id": "1", "method": "nope", "params": {}}', -32601),
    ('{"id": "1", "method": "send", "params": {"channelId": 5}}', -32602),
    ('{"id": "1", "method": "send", "params": []}', -32602),
    ('{"id": "1", "method": "channel.messagesync", "params": {"limit": "x"}}', -32602),
    ('{"id": "1", "method": "connect", "params": {"uid": "a"}}', -32600),
    ("[1, 2, 3]", -32600),
    ('"text"', -32600),
    ("{" * 5000, -32700),
]


@pytest.mark.parametrize(("frame", "code"), ERROR_FRAMES)
async def test_malformed_frame_gets_an_error_and_the_socket_stays(node, frame, code):
    alice = await node.login("alice")
    await alice.ws.send_str(frame)
    reply = await alice.next_frame()
    assert reply["error"]["code"] == code, reply
    assert (await alice.call("ping"))["result"] is None


async def test_recvack_with_bad_params_is_ignored(node):
    alice = await node.login("alice")
    await alice.send_json({"method": "recvack", "params": {"messageSeq": "x"}})
    await alice.send_json({"method": "unknown.notification", "params": {}})
    assert (await alice.call("ping"))["result"] is None


async def test_binary_frames(node):
    alice = await node.login("alice")
    await alice.ws.send_bytes(b'{"id": "b", "method": "ping"}')
    assert (await alice.next_frame())["result"] is None  # JSON in a binary frame
    await alice.ws.send_bytes(b"\x30\x01\x02")  # WuKongIM's binary protocol
    assert await alice.closed() == CloseCode.UNSUPPORTED_DATA


async def test_oversized_frame_closes_1009(node):
    alice = await node.login("alice")
    limit = node.services.settings.ws_max_frame
    await alice.ws.send_str(
        '{"id":"1","method":"ping","params":{"x":"' + "a" * limit + '"}}'
    )
    assert await alice.closed() == CloseCode.TOO_BIG
    assert (await (await node.login("alice")).call("ping"))["result"] is None


async def test_invalid_utf8_closes(node):
    alice = await node.login("alice")
    await alice.ws._writer.send_frame(b'{"x":"\xff\xfe"}', WSMsgType.TEXT)
    assert await alice.closed() in (1007, 1002)


# -- authentication ---------------------------------------------------------------
async def test_auth_failure_is_error_code_2_then_close(node):
    await node.token("alice")
    client = RawClient(await node.raw("/any/path"))
    reply = await client.call(
        "connect", {"uid": "alice", "token": "wrong", "deviceFlag": 2}
    )
    assert reply["error"]["code"] == 2
    assert reply["error"]["message"] == "ReasonAuthFail"
    assert await client.closed() == CloseCode.AUTH_FAILED
    # A token is per device flag.
    client = RawClient(await node.raw())
    reply = await client.call(
        "connect", {"uid": "alice", "token": "tok-alice-2", "deviceFlag": 1}
    )
    assert reply["error"]["code"] == 2


async def test_first_frame_must_be_connect(node):
    client = RawClient(await node.raw())
    reply = await client.call("ping", {})
    assert "error" in reply
    assert await client.closed() == CloseCode.POLICY


async def test_unauthenticated_socket_closed_after_2s(node):
    started = time.monotonic()
    client = RawClient(await node.raw())
    code = await client.closed(timeout=5)
    elapsed = time.monotonic() - started
    assert code == CloseCode.AUTH_TIMEOUT
    assert 1.8 <= elapsed <= 2.5, elapsed


async def test_many_idle_unauthenticated_sockets_all_closed_at_2s(node):
    clients = []
    for _ in range(50):  # each socket's clock starts when it is open
        clients.append((RawClient(await node.raw()), time.monotonic()))
    codes, times = [], []

    async def wait_close(client: RawClient, opened: float) -> None:
        codes.append(await client.closed(timeout=5))
        times.append(time.monotonic() - opened)

    async with anyio.create_task_group() as tg:
        for client, opened in clients:
            tg.start_soon(wait_close, client, opened)
    assert codes == [CloseCode.AUTH_TIMEOUT] * 50
    assert min(times) >= 1.5
    assert max(times) <= 2.5 + 0.5, max(times)
    with anyio.fail_after(2):  # no state is left behind
        while node.gateway.sessions:
            await anyio.sleep(0.02)


# -- device levels, kicks, device_quit, onlinestatus ----------------------------------
async def test_master_login_kicks_other_devices_of_the_same_flag(node):
    old = await node.login("alice", device_flag=1, device_id="web-a", level=1)
    other_flag = await node.login("alice", device_flag=0, device_id="app", level=1)
    await node.login("alice", device_flag=1, device_id="web-b", level=1)
    note = await old.notification("disconnect")
    assert note["params"]["reasonCode"] == 12
    assert await old.closed() == CloseCode.KICKED
    assert (await other_flag.call("ping"))["result"] is None


async def test_slave_login_replaces_only_the_same_device_id(node):
    first = await node.login("alice", device_flag=1, device_id="tab-1")
    second = await node.login("alice", device_flag=1, device_id="tab-2")
    await node.login("alice", device_flag=1, device_id="tab-1")
    assert (await first.notification("disconnect"))["params"]["reasonCode"] == 12
    assert await first.closed() == CloseCode.KICKED
    assert (await second.call("ping"))["result"] is None


async def test_device_quit_revokes_and_kicks(node):
    web = await node.login("alice", device_flag=1)
    app = await node.login("alice", device_flag=0)
    status, body = await node.api.post(
        "/user/device_quit", {"uid": "alice", "device_flag": 1}
    )
    assert (status, body) == (200, {"status": 200})
    assert (await web.notification("disconnect"))["params"]["reasonCode"] == 12
    assert await web.closed() == CloseCode.KICKED
    assert (await app.call("ping"))["result"] is None
    again = RawClient(await node.raw())
    reply = await again.call(
        "connect", {"uid": "alice", "token": "tok-alice-1", "deviceFlag": 1}
    )
    assert reply["error"]["code"] == 2
    status, _ = await node.api.post(
        "/user/device_quit", {"uid": "alice", "device_flag": -1}
    )
    assert status == 200
    assert await app.closed() == CloseCode.KICKED
    status, body = await node.api.post(
        "/user/device_quit", {"uid": "", "device_flag": 1}
    )
    assert status == 400


async def test_banning_a_user_closes_his_connections(node):
    web = await node.login("alice", device_flag=1)
    app = await node.login("alice", device_flag=0)
    bob = await node.login("bob", device_flag=1)
    ban = {"channel_id": "alice", "channel_type": 1}
    status, _ = await node.api.post("/channel/info", {**ban, "ban": 1})
    assert status == 200
    for conn in (web, app):
        notice = await conn.notification("disconnect")
        assert (notice["params"]["reasonCode"], notice["params"]["reason"]) == (
            19,
            "banned",
        )
        assert await conn.closed() == CloseCode.KICKED
    assert (await bob.call("ping"))["result"] is None
    # A ban of a group, or flags without ban, kick no one.
    status, _ = await node.api.post(
        "/channel/info", {"channel_id": "bob", "channel_type": 2, "ban": 1}
    )
    assert status == 200
    status, _ = await node.api.post(
        "/channel", {"channel_id": "bob", "channel_type": 1, "send_ban": 1}
    )
    assert status == 200
    await anyio.sleep(0.3)  # a kick would have come through pub/sub by now
    assert (await bob.call("ping"))["result"] is None


async def test_onlinestatus_lists_live_connections(node, redis):
    status, body = await node.api.post("/user/onlinestatus", [])
    assert (status, body) == (200, {"status": 200})
    clients = [  # noqa: F841 - kept open
        await node.login("alice", device_flag=0),
        await node.login("alice", device_flag=2),
        await node.login("bob", device_flag=1),
    ]
    status, body = await node.api.post("/user/onlinestatus", ["alice", "bob", "carol"])
    assert status == 200
    assert sorted((e["uid"], e["device_flag"], e["online"]) for e in body) == [
        ("alice", 0, 1),
        ("alice", 2, 1),
        ("bob", 1, 1),
    ]
    # A crashed node: its heartbeat went stale, so its connections do not count.
    keys = node.services.keys
    stale = int(time.time() * 1000) - 60_000
    await redis.zadd(keys.nodes, {"dead-node": stale})
    await redis.hset(keys.connections("carol"), "c1", "dead-node:1:0")
    status, body = await node.api.post("/user/onlinestatus", ["carol"])
    assert (status, body) == (200, [])
    # Silent for more than 10 beats: its leftovers are removed by the reader...
    assert await redis.hlen(keys.connections("carol")) == 0
    assert await redis.zscore(keys.nodes, "dead-node") is None
    # ...while a node only a few beats late is ignored but kept.
    late = int(time.time() * 1000) - 4 * node.services.settings.node_heartbeat_ms
    await redis.zadd(keys.nodes, {"late-node": late})
    await redis.hset(keys.connections("dave"), "c2", "late-node:1:0")
    status, body = await node.api.post("/user/onlinestatus", ["dave"])
    assert (status, body) == (200, [])
    assert await redis.hlen(keys.connections("dave")) == 1
    status, body = await node.api.post("/user/onlinestatus", {"uids": ["x"]})
    assert status == 400
    status, _ = await node.api.post("/user/onlinestatus", ["bad@uid"])
    assert status == 400


async def test_closed_connections_leave_the_registry(node):
    alice = await node.login("alice")
    _, body = await node.api.post("/user/onlinestatus", ["alice"])
    assert len(body) == 1
    await alice.close()
    with anyio.fail_after(3):
        while (await node.api.post("/user/onlinestatus", ["alice"]))[1]:
            await anyio.sleep(0.02)


# -- pub/sub loss ---------------------------------------------------------------------
async def test_lost_subscription_resubscribes_and_asks_clients_to_resync(
    node, fanout, redis
):
    alice, bob = await node.login("alice"), await node.login("bob")
    subscriber = node.gateway.subscriber
    for round_ in range(1, 6):
        await redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        event = (await bob.notification("event", timeout=5))["params"]
        assert event["type"] == "jindou.resync"
        assert isinstance(event["id"], str)
        assert event["id"]
        assert isinstance(event["timestamp"], int)
        assert subscriber.resubscriptions >= round_
        with anyio.fail_after(2):  # R7: resubscribed within 2 s
            while not subscriber.healthy:
                await anyio.sleep(0.01)
        # The fan-out helper's own subscription was killed too: give it a moment.
        await anyio.sleep(0.1)
        await alice.call("send", send_params("bob"))
        seqs = set()
        with anyio.fail_after(5):
            while round_ not in seqs:  # earlier unacked ones may come again
                seqs.add((await bob.notification("recv"))["params"]["messageSeq"])


async def test_readiness_reports_a_lost_subscription(node):
    assert await node.gateway.subscription_check() is None
    node.gateway.subscriber.healthy = False
    assert "subscription" in await node.gateway.subscription_check()
    node.gateway.subscriber.healthy = True


async def test_gateway_metrics(node, fanout):
    from broker.metrics import REGISTRY

    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before_conns = value("jindou_connections", device_flag="2")
    before_deliveries = value("jindou_deliveries_total")
    alice, bob = await node.login("alice"), await node.login("bob")
    assert value("jindou_connections", device_flag="2") == before_conns + 2
    await alice.call("send", send_params("bob"))
    await bob.notification("recv")
    assert value("jindou_deliveries_total") >= before_deliveries + 1
    await alice.call("disconnect", {})
    await alice.closed()
    with anyio.fail_after(2):
        while value("jindou_connections", device_flag="2") != before_conns + 1:
            await anyio.sleep(0.02)


async def test_onlinestatus_webhook_events(node_settings, redis):
    from tests.gateway.conftest import gateway_settings, start_node

    settings = gateway_settings(node_settings, webhook_url="http://127.0.0.1:9/hook")
    async with start_node(settings) as node:
        keys = node.services.keys
        phone = await node.login("alice", device_flag=0)
        desk = await node.login("alice", device_flag=2)
        await phone.call("disconnect", {})
        await phone.closed()
        with anyio.fail_after(3):
            while await redis.xlen(keys.webhook_outbox) < 3:
                await anyio.sleep(0.02)
        entries = await redis.xrange(keys.webhook_outbox)
        events = [
            (f[b"id"].decode(), f[b"e"].decode(), json.loads(f[b"d"]))
            for _, f in entries
        ]
        conn = {s.device_flag: s.conn_id for s in node.gateway.sessions}
        assert all(e == "user.onlinestatus" for _, e, _ in events)
        lines = [body[0] for _, _, body in events]
        assert lines[1] == f"alice-2-1-{conn[2]}-1-2"
        assert lines[0].startswith("alice-0-1-") and lines[0].endswith("-1-1")
        assert lines[2].startswith("alice-0-0-") and lines[2].endswith("-0-1")
        assert events[2][0] == f"s-{lines[2].split('-')[3]}-0"
        await desk.close()


async def test_no_onlinestatus_events_without_a_webhook(node, redis):
    alice = await node.login("alice")
    await alice.close()
    await anyio.sleep(0.2)
    assert await redis.xlen(node.services.keys.webhook_outbox) == 0


async def test_a_node_taken_for_dead_registers_its_connections_again(node, redis):
    keys = node.services.keys
    alice = await node.login("alice")
    # What a reader does to a node silent for 10 beats (a long pause, say).
    await redis.zrem(keys.nodes, node.services.node_id)
    await redis.delete(keys.connections("alice"))
    with anyio.fail_after(3):
        while not (await node.api.post("/user/onlinestatus", ["alice"]))[1]:
            await anyio.sleep(0.05)
    assert (await alice.call("ping"))["result"] is None


async def test_master_token_registration_kicks_that_device_flag(node):
    web = await node.login("alice", device_flag=1)
    app = await node.login("alice", device_flag=0)
    body = {"uid": "alice", "token": "new-web", "device_flag": 1, "device_level": 0}
    status, _ = await node.api.post("/user/token", body)
    assert status == 200
    assert (await web.call("ping"))["result"] is None  # slave level: no kick
    status, _ = await node.api.post("/user/token", {**body, "device_level": 1})
    assert status == 200
    assert (await web.notification("disconnect"))["params"]["reasonCode"] == 12
    assert await web.closed() == CloseCode.KICKED
    assert (await app.call("ping"))["result"] is None


async def test_banned_user_cannot_connect(node, redis):
    token = await node.token("alice")
    await redis.hset(node.services.keys.channel(1, "alice").meta, "ban", "1")
    client = RawClient(await node.raw())
    reply = await client.call(
        "connect", {"uid": "alice", "token": token, "deviceFlag": 2}
    )
    assert reply["error"]["code"] == 19
    assert await client.closed() == CloseCode.AUTH_FAILED


async def test_connect_result_is_the_first_frame_while_messages_flow(node, fanout):
    """Deliveries that reach a joining connection wait for its connect result."""
    token = await node.token("bob")
    stop = anyio.Event()
    body = {
        "from_uid": "alice",
        "channel_id": "bob",
        "channel_type": 1,
        "payload": b64({"type": 1, "content": "x"}),
    }

    async def keep_sending() -> None:
        while not stop.is_set():
            status, reply = await node.api.post("/message/send", body)
            assert status == 200, reply

    firsts = []
    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(keep_sending)
        for attempt in range(30):
            ws = await node.raw()
            params = {
                "uid": "bob",
                "token": token,
                "deviceFlag": 2,
                "deviceId": f"bob-{attempt}",
                "clientTimestamp": 1,
            }
            await ws.send_json({"method": "connect", "id": "c", "params": params})
            with anyio.fail_after(5):
                first = await ws.receive_json()
                # Read on until a recv shows messages reached this connection.
                while (await ws.receive_json()).get("method") != "recv":
                    pass
            firsts.append(first.get("method", "result"))
            await ws.close()
        stop.set()
    assert firsts == ["result"] * 30
