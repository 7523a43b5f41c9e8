"""Large channels cost O(1) writes per message; the webhook outbox."""

import json
import time

import anyio
import pytest

from broker.redis_conn import keys_for
from broker.redis_server import RedisProcess
from tests.workers.harness import connect, join, wait_drained
from tests.workers.test_fanout_smoke import conversations, send

WRITES = {
    "zadd", "hset", "hsetnx", "publish", "xadd", "xack", "xtrim", "del", "zrem",
    "hdel", "setbit", "hincrby", "set", "sadd", "srem",
}  # fmt: skip


@pytest.fixture
def redis_server(tmp_path):
    """A private redis-server: INFO commandstats then counts only this test's work
    (no heartbeat of a process left over from another test)."""
    server = RedisProcess(tmp_path / "redis", appendonly=False).start()
    yield server
    server.stop()


async def write_calls(redis) -> int:
    stats = await redis.info("commandstats")
    return sum(
        int(v["calls"])
        for k, v in stats.items()
        if k.removeprefix("cmdstat_") in WRITES
    )


async def background_writes_per_second(redis, seconds=2.0) -> float:
    """Heartbeats and lease renewals, measured while no message flows."""
    before = await write_calls(redis)
    await anyio.sleep(seconds)
    return (await write_calls(redis) - before) / seconds


async def writes_per_message(api, redis, settings, channel: str, n=10) -> float:
    """Write commands (including those run inside scripts) per message, less the
    background writes of the same time, averaged over ``n`` messages."""
    idle_rate = await background_writes_per_second(redis)
    before, started = await write_calls(redis), time.monotonic()
    for _ in range(n):
        await send(api, "m1", channel, 2, "hello", red_dot=1)
        await wait_drained(redis, settings)
    background = idle_rate * (time.monotonic() - started)
    return (await write_calls(redis) - before - background) / n


async def test_large_channel_costs_constant_writes(api, redis, settings, workers):
    keys = keys_for(settings)
    big = [f"m{i}" for i in range(10_000)]
    for i in range(0, len(big), 2000):
        await join(redis, settings, "big", big[i : i + 2000])
    await join(redis, settings, "small", big[:200])
    now = int(time.time() * 1000)
    await redis.zadd(keys.nodes, {"node-x": now})
    for uid in big[:50]:  # some members online
        await connect(redis, settings, uid, f"c-{uid}", "node-x")
    # A long lease: heartbeats and renewals barely add to the counted writes.
    # No webhook sender here: the test reads the outbox the producer filled.
    workers.start(
        JINDOU_WEBHOOK_URL="http://127.0.0.1:9/hook",
        JINDOU_WEBHOOK_SENDER="0",
        JINDOU_WORKER_LEASE_MS="10000",
        # node-x beats once; a long interval keeps it live for the whole test
        JINDOU_NODE_HEARTBEAT_MS="60000",
    )
    await send(api, "m0", "big", 2, "warm-up")
    await send(api, "m0", "small", 2, "warm-up")
    await wait_drained(redis, settings)
    big_writes = await writes_per_message(api, redis, settings, "big")
    small_writes = await writes_per_message(api, redis, settings, "small")
    # append (~8) + sender record + 1 publish + 2 outbox events + mark + ack + trim
    assert big_writes <= 20, big_writes
    assert small_writes >= 200, small_writes  # one per member: the counter works
    # Read-time merge: members see the large channel's message and unread.
    conv = (await conversations(api, "m9999"))["big"]
    assert conv["unread"] == 11
    assert conv["last_msg_seq"] == 11
    assert conv["version"] // 1_000_000 == int(
        await redis.hget(keys.channel(2, "big").meta, "last_ms")
    )
    assert await redis.zscore(keys.recent("m9999"), "2:big") is None
    # The sender's own_last_seq is still kept (one write).
    assert (await conversations(api, "m1"))["big"]["unread"] == 0
    assert (await conversations(api, "m0"))["big"]["unread"] == 10
    # One offline event with every offline member.
    events = await redis.xrange(keys.webhook_outbox)
    offline = [json.loads(e[b"d"]) for _, e in events if e[b"e"] == b"msg.offline"]
    last = [e for e in offline if e["channel_id"] == "big"][-1]
    assert len(last["to_uids"]) == 10_000 - 50
    assert "m1" not in last["to_uids"]  # the sender
    await unlink_prefix(redis, settings.key_prefix)


async def unlink_prefix(redis, prefix):
    """Drop this test's 20,000 keys in batches (quicker than the fixture's loop)."""
    batch = []
    async for key in redis.scan_iter(match=f"{prefix}*", count=2000):
        batch.append(key)
        if len(batch) >= 1000:
            await redis.unlink(*batch)
            batch = []
    if batch:
        await redis.unlink(*batch)


async def test_outbox_events_have_deterministic_ids(api, redis, settings, workers):
    keys = keys_for(settings)
    now = int(time.time() * 1000)
    await redis.zadd(keys.nodes, {"node-x": now})
    await connect(redis, settings, "alice", "c1", "node-x")
    workers.start(
        JINDOU_WEBHOOK_URL="http://127.0.0.1:9/hook",
        JINDOU_WEBHOOK_SENDER="0",
        JINDOU_NODE_HEARTBEAT_MS="60000",  # node-x beats once
    )
    data = await send(api, "alice", "bob", 1, "hi")
    await wait_drained(redis, settings)
    events = {e[b"id"].decode(): e for _, e in await redis.xrange(keys.webhook_outbox)}
    mid = data["message_id"]
    assert set(events) == {f"n-{mid}", f"o-{mid}"}
    notify = json.loads(events[f"n-{mid}"][b"d"])
    assert notify["message_seq"] == 1
    assert notify["channel_id"] == "bob"
    offline = json.loads(events[f"o-{mid}"][b"d"])
    assert offline["to_uids"] == ["bob"]  # alice is online
    assert offline["message_id"] == mid


async def test_no_outbox_without_webhook_url(api, redis, settings, workers):
    keys = keys_for(settings)
    workers.start()
    await send(api, "alice", "bob", 1, "hi")
    await wait_drained(redis, settings)
    assert await redis.xlen(keys.webhook_outbox) == 0
