"""Packed command batches (workers/packed.py) against a real Redis."""

from __future__ import annotations

from redis.asyncio import Connection
from redis.exceptions import ResponseError

from workers.packed import PackedBatch, pack
from workers.rawreplies import hot_path_client


def test_pack_matches_redis_py() -> None:
    args = ("HSET", "k", "f", 12, b"\x00bin", "ü")
    assert pack(*args) == b"".join(Connection().pack_command(*args))


async def test_batch_replies_in_order_with_errors_in_place(redis, key_prefix) -> None:
    client = hot_path_client(redis)
    key = f"{key_prefix}packed"
    batch = PackedBatch()
    batch.add("RPUSH", key, "a", "b")
    batch.add("HGET", key, "x")  # wrong type: an error reply, kept in place
    batch.add_packed(pack("LRANGE", key, 0, -1))
    replies = await batch.run(client)
    assert replies[0] == 2
    assert isinstance(replies[1], ResponseError)
    assert replies[2] == [b"a", b"b"]
    # The connection is still in step: a plain command afterwards works.
    assert await client.llen(key) == 2
    await client.aclose()
    await client.connection_pool.disconnect()
