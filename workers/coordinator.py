"""One worker process: keeps a fair share of shard leases and a consumer per shard.

Every third of a lease period: heartbeat, renew the leases held, hand back shards
above the fair share (after their consumer acknowledged its batch), take free
shards up to it. A killed worker's shards become free when its leases expire and
its registry entry ages out; a stopped one hands them back at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket

import anyio
from anyio.abc import TaskGroup
from redis.asyncio import Redis
from redis.exceptions import RedisError

from broker.keys import Keys
from broker.metrics import LEASE_CHANGES, WORKER_LAG, WORKER_PENDING, WORKER_SHARDS
from broker.settings import Settings
from workers.dispatch import DispatchLoop, ShardConsumer
from workers.fanout import Fanout
from workers.leases import ShardLeases, acquisition_order, fair_share
from workers.live import LiveListener
from workers.rawreplies import hot_path_client

log = logging.getLogger(__name__)


def new_worker_id() -> str:
    return f"w-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Coordinator:
    def __init__(
        self, redis: Redis, keys: Keys, settings: Settings, worker_id: str = ""
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.worker_id = worker_id or new_worker_id()
        self.lease_ms = settings.worker_lease_ms
        self.leases = ShardLeases(redis, keys, self.worker_id, self.lease_ms)
        # Fan-out and dispatch reads use the hot-path client (workers/rawreplies.py).
        self.hot = hot_path_client(redis)
        self.fanout = Fanout(self.hot, keys, settings)
        self.live = LiveListener(redis, keys, self.fanout.deliver_live)
        self.dispatch = DispatchLoop(
            self.hot, keys, self.worker_id, self.fanout.process
        )
        self.consumers: dict[int, ShardConsumer] = {}
        self.releasing: set[int] = set()
        # Hand-backs run in a task each (each waits for its consumer to stop), but
        # release their leases one at a time: 64 concurrent releases made the pool
        # open as many Redis connections and keep them open afterwards.
        self._releases = anyio.Lock()
        self.stopping = False
        self._order = acquisition_order(keys.shards, self.worker_id)

    @property
    def owned(self) -> set[int]:
        return set(self.consumers)

    async def unowned_shards(self) -> int:
        owners = await self.leases.owners(range(self.keys.shards))
        return sum(1 for owner in owners.values() if not owner)

    async def run(self, stop: anyio.Event) -> None:
        """Work until ``stop`` is set, then hand everything back cleanly."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.live.run)
            tg.start_soon(self.dispatch.run)
            balance_scope = anyio.CancelScope()
            tg.start_soon(self._balance_forever, tg, balance_scope)
            await stop.wait()
            self.stopping = True  # no new shard from here on
            balance_scope.cancel()
            await self._hand_back_all()
            tg.cancel_scope.cancel()
        await self.hot.connection_pool.disconnect()

    async def _balance_forever(self, tg: TaskGroup, scope: anyio.CancelScope) -> None:
        with scope:
            while True:
                try:
                    await self.balance(tg)
                except (RedisError, OSError) as exc:
                    log.warning("lease round failed: %s", exc)
                await anyio.sleep(self.lease_ms / 3000)

    async def balance(self, tg: TaskGroup) -> None:
        live_workers = await self.leases.heartbeat()
        held = sorted(self.owned)
        kept = await self.leases.renew(held)
        for shard in set(held) - kept:
            log.warning("lease of shard %d lost; stopping its consumer", shard)
            self.consumers.pop(shard).stop()
            LEASE_CHANGES.labels("lost").inc()
            _forget_gauges(shard)
        target = fair_share(self.keys.shards, live_workers)
        active = [s for s in sorted(self.owned) if s not in self.releasing]
        for shard in active[target:]:
            self.releasing.add(shard)
            tg.start_soon(self._hand_back, shard)
        if len(active) < target:
            owners = await self.leases.owners(self._order)
            for shard in self._order:
                if len(self.owned) - len(self.releasing) >= target:
                    break
                if owners[shard] or shard in self.consumers:
                    continue
                if self.stopping:
                    return
                if await self.leases.acquire(shard):
                    self._start(shard)
        self.live.set_shards(self.owned - self.releasing)
        WORKER_SHARDS.set(len(self.owned))

    def _start(self, shard: int) -> None:
        self.consumers[shard] = self.dispatch.add(shard)
        LEASE_CHANGES.labels("acquired").inc()
        log.info("took shard %d", shard)

    async def _hand_back(self, shard: int) -> None:
        consumer = self.consumers.get(shard)
        if consumer is not None:
            consumer.stop()
            await consumer.done.wait()
        try:
            async with self._releases:
                await self.leases.release(shard)
            LEASE_CHANGES.labels("released").inc()
            log.info("handed back shard %d", shard)
        except (RedisError, OSError) as exc:
            log.warning("could not hand back shard %d (it will expire): %s", shard, exc)
        finally:
            self.consumers.pop(shard, None)
            self.releasing.discard(shard)
            _forget_gauges(shard)

    async def _hand_back_all(self) -> None:
        self.live.set_shards(set())
        with anyio.CancelScope(shield=True):
            # A balance round cut short may still have started a consumer after
            # the first pass (redis-py can swallow a cancellation): loop until none.
            while self.consumers:
                async with anyio.create_task_group() as tg:
                    for shard in list(self.consumers):
                        if shard not in self.releasing:
                            self.releasing.add(shard)
                            tg.start_soon(self._hand_back, shard)
                for consumer in list(self.consumers.values()):
                    consumer.stop()
                    await consumer.done.wait()
                await anyio.sleep(0.01)
            try:
                await self.leases.unregister()
            except (RedisError, OSError) as exc:
                log.warning("could not unregister: %s", exc)


def _forget_gauges(shard: int) -> None:
    """A shard is reported by its current owner only."""
    for gauge in (WORKER_LAG, WORKER_PENDING):
        with contextlib.suppress(KeyError):
            gauge.remove(str(shard))
