"""The workers' presence cache follows the gateway's presence-change stream."""

from __future__ import annotations

import time

from broker.gateway.presence import ConnRecord
from broker.gateway.presence import Presence as Registry
from broker.redis_conn import keys_for
from workers.delivery import Presence
from workers.packed import PackedBatch
from workers.rawreplies import hot_path_client


async def setup(redis, settings):
    keys = keys_for(settings)
    await redis.zadd(keys.nodes, {"n1": int(time.time() * 1000)})
    registry = Registry(redis, keys, settings.node_heartbeat_ms)
    hot = hot_path_client(redis)
    return keys, registry, hot, Presence(hot, keys, 60_000)


async def test_cached_until_the_gateway_records_a_change(redis, settings) -> None:
    keys, registry, hot, presence = await setup(redis, settings)
    try:
        assert await presence.online(["a", "b"]) == {}  # both cached offline
        await registry.register("a", ConnRecord("c1", "n1", 1, 0))
        assert await presence.online(["a", "b"]) == {"a": frozenset({"n1"})}
        # A write that bypasses the registry is not seen: the entry is cached...
        await redis.delete(keys.connections("a"))
        assert await presence.online(["a"]) == {"a": frozenset({"n1"})}
        # ...until the registry records a change of that user.
        await registry.unregister("a", "c1")
        assert await presence.online(["a", "b"]) == {}
    finally:
        await hot.aclose()
        await hot.connection_pool.disconnect()


async def test_lost_change_stream_drops_the_whole_cache(redis, settings) -> None:
    keys, registry, hot, presence = await setup(redis, settings)
    try:
        await registry.register("a", ConnRecord("c1", "n1", 1, 0))
        assert await presence.online(["a", "b"]) == {"a": frozenset({"n1"})}
        # The stream is gone (trimmed past, deleted, Redis lost its data), and
        # connections changed meanwhile without a trace a worker could read.
        await redis.delete(keys.presence_changes, keys.connections("a"))
        await redis.hset(keys.connections("b"), "c2", "n1:1:0")
        assert await presence.online(["a", "b"]) == {"b": frozenset({"n1"})}
    finally:
        await hot.aclose()
        await hot.connection_pool.disconnect()


async def test_changes_read_with_other_commands(redis, settings) -> None:
    """The fan-out reads the changes in its channel-facts round trip."""
    keys, registry, hot, presence = await setup(redis, settings)
    try:
        assert await presence.online(["a"]) == {}
        await registry.register("a", ConnRecord("c1", "n1", 1, 0))
        batch = PackedBatch()
        batch.add("PING")
        cursor = presence.queue_changes(batch)
        assert cursor is not None
        pong, here, changes = await batch.run(hot)
        assert presence.apply_changes(cursor, here, changes)
        assert await presence.online(["a"], refreshed=True) == {"a": frozenset({"n1"})}
        # A cursor entry that is gone asks for a full refresh.
        await redis.delete(keys.presence_changes)
        batch = PackedBatch()
        cursor = presence.queue_changes(batch)
        assert cursor is not None
        here, changes = await batch.run(hot)
        assert not presence.apply_changes(cursor, here, changes)
    finally:
        await hot.aclose()
        await hot.connection_pool.disconnect()
