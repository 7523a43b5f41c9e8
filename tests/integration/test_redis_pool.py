"""The Redis client pool is bounded: a burst waits for connections, it does not
open one per caller (nor fail with "Too many connections")."""

from __future__ import annotations

import anyio

from broker.redis_conn import connect
from broker.settings import Settings


async def test_a_burst_of_commands_shares_a_bounded_pool(settings: Settings) -> None:
    observer = connect(settings.redis_url)
    before = len(await observer.client_list())  # includes the observer itself
    redis = connect(settings.redis_url, max_connections=8)
    try:
        results: list[bytes | None] = []

        async def one(n: int) -> None:
            # Each caller holds its connection for a moment, as a slow reply would.
            await redis.execute_command("EVAL", "return redis.call('TIME')[1]", 0)
            results.append(await redis.get(f"pool-test-missing-{n}"))

        async with anyio.create_task_group() as tg:
            for n in range(500):
                tg.start_soon(one, n)
        assert results == [None] * 500
        opened = len(await observer.client_list()) - before
        assert 1 <= opened <= 8
    finally:
        await redis.aclose()
        await observer.aclose()
