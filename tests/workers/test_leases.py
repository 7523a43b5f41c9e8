"""Shard leases with real worker processes: fair share, rebalance, takeover."""

import os
import time
from collections import Counter

import anyio

from broker.redis_conn import keys_for
from workers.leases import acquisition_order, fair_share

LEASE_S = 0.6  # the workers fixture's JINDOU_WORKER_LEASE_MS


def test_fair_share_and_order():
    assert fair_share(16, 1) == 16
    assert fair_share(16, 3) == 6
    assert fair_share(16, 0) == 16
    order = acquisition_order(16, "w-x")
    assert sorted(order) == list(range(16))


async def owners(redis, settings) -> Counter:
    keys = keys_for(settings)
    values = await redis.mget([keys.lease(s) for s in range(settings.shards)])
    return Counter(v.decode() if v else "" for v in values)


async def live_workers(redis, settings) -> int:
    keys = keys_for(settings)
    return await redis.zcard(keys.workers)


async def wait_for(predicate, timeout: float, what: str) -> float:
    start = time.monotonic()
    while True:
        if await predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout}s: {what}")
        await anyio.sleep(0.05)


async def balanced(redis, settings, n_workers: int) -> bool:
    counts = await owners(redis, settings)
    share = fair_share(settings.shards, n_workers)
    return (
        "" not in counts and len(counts) == n_workers and max(counts.values()) <= share
    )


async def test_rebalance_on_start_stop_and_kill(redis, settings, workers):
    w1 = workers.start()
    await wait_for(lambda: balanced(redis, settings, 1), 15, "first worker owns all")
    # A second and a third worker: rebalanced within two lease periods of joining.
    for n in (2, 3):
        workers.start()
        await wait_for(lambda n=n: _registered(redis, settings, n), 15, "registered")
        took = await wait_for(
            lambda n=n: balanced(redis, settings, n), 2 * LEASE_S + 1, f"{n} balanced"
        )
        assert took <= 2 * LEASE_S + 1
    # A clean stop hands the shards back at once; the others take them.
    assert workers.terminate(w1) == 0
    await wait_for(lambda: balanced(redis, settings, 2), 2 * LEASE_S + 1, "after stop")
    # kill -9: the shards come back after the lease expires.
    victim = workers.alive[0]
    workers.kill(victim)
    await wait_for(lambda: balanced(redis, settings, 1), 4 * LEASE_S + 1, "after kill")


async def _registered(redis, settings, n: int) -> bool:
    return await live_workers(redis, settings) >= n


async def test_sigterm_releases_leases_and_unregisters(redis, settings, workers):
    proc = workers.start()
    await wait_for(lambda: balanced(redis, settings, 1), 15, "owns all")
    assert workers.terminate(proc) == 0
    counts = await owners(redis, settings)
    assert counts == Counter({"": settings.shards})
    assert await live_workers(redis, settings) == 0
    assert "handed back shard" in workers.logs()


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def test_handing_shards_back_opens_no_connections(redis, settings, workers):
    # When a second worker joins, the first hands half of its shards back at once;
    # each release used to take a pooled connection of its own, and the pool kept
    # them all open afterwards (one file per shard handed back).
    first = workers.start()
    await wait_for(lambda: balanced(redis, settings, 1), 15, "first worker owns all")
    await anyio.sleep(0.5)
    before = open_files(first.pid)
    workers.start()
    await wait_for(lambda: balanced(redis, settings, 2), 2 * LEASE_S + 1, "balanced")
    await anyio.sleep(0.5)
    assert open_files(first.pid) <= before + 2, (before, open_files(first.pid))
