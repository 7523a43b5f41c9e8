"""One client serves more concurrent blocking commands than redis-py's default pool
(100): a worker blocks on every shard at once (128 by default)."""

import asyncio

from broker.redis_conn import connect


async def test_more_concurrent_blocking_reads_than_the_default_pool(settings):
    client = connect(settings.redis_url)
    try:
        keys = [f"{settings.key_prefix}pool:{i}" for i in range(150)]
        replies = await asyncio.gather(*(client.blpop([k], timeout=0.3) for k in keys))
        assert replies == [None] * len(keys)
    finally:
        await client.aclose()
