"""Shard ownership through leases in Redis, and the registry of live workers.

A shard has one owner at a time: ``SET lease <worker> NX PX``, renewed at a third of
the lease, handed back with a compare-and-delete. Workers register with a heartbeat
in the ``workers`` zset; each aims at a fair share, ⌈shards / live workers⌉.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from broker.keys import Keys
from broker.scripts import load

# A registry entry older than this many lease periods is removed outright.
FORGET_AFTER_LEASES = 10


def fair_share(shards: int, live_workers: int) -> int:
    return math.ceil(shards / max(live_workers, 1))


def acquisition_order(shards: int, worker_id: str) -> list[int]:
    """Shards in an order that differs per worker, so that starting workers do not
    all race for shard 0 first."""
    start = sum(worker_id.encode()) % shards
    return [(start + i) % shards for i in range(shards)]


def now_ms() -> int:
    return int(time.time() * 1000)


class ShardLeases:
    def __init__(self, redis: Redis, keys: Keys, worker_id: str, lease_ms: int):
        self.redis = redis
        self.keys = keys
        self.worker_id = worker_id
        self.lease_ms = lease_ms
        self._renew: AsyncScript = redis.register_script(load("lease_renew"))
        self._release: AsyncScript = redis.register_script(load("lease_release"))

    async def heartbeat(self) -> int:
        """Register this worker as alive; return the number of live workers."""
        now = now_ms()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self.keys.workers, {self.worker_id: now})  # type: ignore[unused-awaitable]
            pipe.zremrangebyscore(  # type: ignore[unused-awaitable]
                self.keys.workers, 0, now - FORGET_AFTER_LEASES * self.lease_ms
            )
            pipe.zcount(self.keys.workers, now - self.lease_ms, "+inf")  # type: ignore[unused-awaitable]
            replies = await pipe.execute()
        return int(replies[-1])

    async def unregister(self) -> None:
        await self.redis.zrem(self.keys.workers, self.worker_id)

    async def acquire(self, shard: int) -> bool:
        got = await self.redis.set(
            self.keys.lease(shard), self.worker_id, nx=True, px=self.lease_ms
        )
        return bool(got)

    async def renew(self, shards: Sequence[int]) -> set[int]:
        """Renew the given leases; return the shards still ours."""
        if not shards:
            return set()
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard in shards:
                await self._renew(
                    keys=[self.keys.lease(shard)],
                    args=[self.worker_id, self.lease_ms],
                    client=pipe,
                )
            replies = await pipe.execute()
        return {shard for shard, ok in zip(shards, replies, strict=True) if int(ok)}

    async def release(self, shard: int) -> None:
        await self._release(keys=[self.keys.lease(shard)], args=[self.worker_id])

    async def owners(self, shards: Iterable[int]) -> dict[int, str]:
        """Current owner of each shard ("" when free)."""
        wanted = list(shards)
        values = await self.redis.mget([self.keys.lease(s) for s in wanted])
        return {
            shard: value.decode() if isinstance(value, bytes) else ""
            for shard, value in zip(wanted, values, strict=True)
        }
