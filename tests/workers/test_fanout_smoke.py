import base64
import time

import msgspec

from broker.protocol import Delivery
from broker.redis_conn import keys_for
from tests.workers.harness import connect, join, wait_drained


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def send(api, from_uid, channel_id, channel_type, text="hi", red_dot=1, **extra):
    status, body = await api.post(
        "/message/send",
        {
            "from_uid": from_uid,
            "channel_id": channel_id,
            "channel_type": channel_type,
            "payload": b64(text),
            "header": {"red_dot": red_dot, **extra.pop("header", {})},
            **extra,
        },
    )
    assert status == 200, body
    return body["data"]


async def conversations(api, uid, **extra):
    status, body = await api.post(
        "/conversation/sync", {"uid": uid, "msg_count": 5, **extra}
    )
    assert status == 200, body
    return {c["channel_id"]: c for c in body}


async def test_person_message_creates_both_conversations(api, redis, settings, workers):
    workers.start()
    await send(api, "alice", "bob", 1, "one")
    await send(api, "alice", "bob", 1, "two")
    await send(api, "bob", "alice", 1, "three", red_dot=0)
    await send(api, "alice", "bob", 1, "four")
    await wait_drained(redis, settings)
    bob = await conversations(api, "bob")
    alice = await conversations(api, "alice")
    assert set(bob) == {"alice"}
    assert set(alice) == {"bob"}
    # bob read up to his own message 3; only message 4 (red_dot) counts.
    assert bob["alice"]["unread"] == 1
    assert bob["alice"]["readed_to_msg_seq"] == 3
    assert alice["bob"]["unread"] == 0
    assert bob["alice"]["last_msg_seq"] == 4
    assert [m["message_seq"] for m in bob["alice"]["recents"]] == [4, 3, 2, 1]


async def test_group_delivery_frame_one_publish_per_node(api, redis, settings, workers):
    keys = keys_for(settings)
    await join(redis, settings, "g1", ["u1", "u2", "u3"])
    now = int(time.time() * 1000)
    await redis.zadd(keys.nodes, {"node-a": now, "node-b": now, "node-dead": 1})
    await connect(redis, settings, "u1", "c1", "node-a", 0)
    await connect(redis, settings, "u2", "c2", "node-a", 1)
    await connect(redis, settings, "u3", "c3", "node-dead", 0)
    pubsub = redis.pubsub()
    await pubsub.subscribe(keys.node_channel("node-a"), keys.node_channel("node-b"))
    workers.start()
    data = await send(api, "u1", "g1", 2, "hello")
    await wait_drained(redis, settings)
    frames = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not frames:
        msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
        if msg:
            frames.append(
                (msg["channel"], msgspec.msgpack.decode(msg["data"], type=Delivery))
            )
    await pubsub.aclose()
    assert len(frames) == 1
    channel, frame = frames[0]
    assert channel == keys.node_channel("node-a").encode()
    assert frame.uids == ["u1", "u2"]
    assert frame.seq == data["message_seq"]
    assert frame.message.message_id == data["message_id"]


async def test_touches_survive_a_script_flush(api, redis, settings, workers):
    """Touches are sent as bare EVALSHA; after SCRIPT FLUSH the worker loads the
    script again and still records the conversation before acknowledging."""
    workers.start()
    await send(api, "carol", "dave", 1, "one")
    await wait_drained(redis, settings)
    await redis.script_flush()
    await send(api, "carol", "dave", 1, "two")
    await wait_drained(redis, settings)
    assert (await conversations(api, "dave"))["carol"]["last_msg_seq"] == 2
    assert (await conversations(api, "carol"))["dave"]["unread"] == 0
