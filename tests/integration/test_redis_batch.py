"""Packed batches (broker/redis_batch.py): replies in order, errors as values,
replies spread over many socket reads, and a retry after a dropped connection."""

from redis.exceptions import NoScriptError, ResponseError

from broker.redis_batch import _hiredis_reader, pack, run_packed
from broker.redis_conn import connect


async def test_replies_come_back_in_order_with_errors_as_values(redis, key_prefix):
    key = f"{key_prefix}batch:s"
    replies = await run_packed(
        redis,
        [
            pack("SET", key, "abc"),
            pack("INCR", key),  # not an integer: an error reply
            pack("EVALSHA", "0" * 40, 0),
            pack("GET", key),
            pack("HMGET", f"{key_prefix}batch:none", "a", "b"),
        ],
    )
    assert replies[0] == b"OK"
    assert isinstance(replies[1], ResponseError)
    assert isinstance(replies[2], NoScriptError)
    assert replies[3:] == [b"abc", [None, None]]


async def test_replies_larger_than_one_socket_read(redis, key_prefix):
    key = f"{key_prefix}batch:big"
    value = b"v" * 4096
    await redis.set(key, value)
    count = 300  # ~1.2 MB of replies: many reads of the connection's buffer size
    replies = await run_packed(
        redis,
        [pack("SET", f"{key}:{n}", n) for n in range(count)]
        + [pack("GET", key)] * count,
    )
    assert replies[:count] == [b"OK"] * count
    assert replies[count:] == [value] * count


async def test_a_dropped_connection_is_retried(redis, settings, key_prefix):
    key = f"{key_prefix}batch:r"
    [first_id] = await run_packed(redis, [pack("CLIENT", "ID")])
    other = connect(settings.redis_url)
    try:  # drop the pooled connection from another client
        assert await other.execute_command("CLIENT", "KILL", "ID", first_id) == 1
    finally:
        await other.aclose()
    replies = await run_packed(redis, [pack("INCR", key), pack("CLIENT", "ID")])
    assert replies[0] == 1
    assert replies[1] != first_id  # the batch ran again on a new connection


async def test_replies_are_read_straight_from_hiredis(redis):
    # The fast path depends on redis-py internals: an upgrade that moves them
    # falls back to the slow path, and this says so.
    pool = redis.connection_pool
    conn = await pool.get_connection()
    try:
        assert _hiredis_reader(conn) is not None
    finally:
        await pool.release(conn)
