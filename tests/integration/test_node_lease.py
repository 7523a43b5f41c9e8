"""Snowflake node numbers are leased from Redis: two processes never share one."""

import anyio

from broker.keys import Keys
from broker.node import SnowflakeLease


async def test_two_leases_get_different_numbers_and_release(redis, settings):
    keys = Keys(prefix=settings.key_prefix, shards=settings.shards)
    one = SnowflakeLease(redis, keys, lease_ms=5000)
    two = SnowflakeLease(redis, keys, lease_ms=5000)
    ids_one, ids_two = await one.acquire(), await two.acquire()
    assert one.number != two.number
    assert ids_one.next_id() != ids_two.next_id()
    assert await redis.get(keys.snowflake_node(one.number)) == one.owner.encode()
    await one.release()
    # released: expires within a millisecond (PTTL 1, 0, or -2 once gone)
    assert await redis.pttl(keys.snowflake_node(one.number)) <= 1


async def test_lost_lease_is_replaced_by_a_free_number(redis, settings):
    keys = Keys(prefix=settings.key_prefix, shards=settings.shards)
    lease = SnowflakeLease(redis, keys, lease_ms=300)
    await lease.acquire()
    first = lease.number
    # another process steals the number after our lease lapsed
    await redis.set(keys.snowflake_node(first), "someone-else", px=60_000)
    with anyio.move_on_after(0.5):
        await lease.renew_forever()
    assert lease.number != first
    assert lease.ids.node == lease.number
    assert await redis.get(keys.snowflake_node(lease.number)) == lease.owner.encode()
