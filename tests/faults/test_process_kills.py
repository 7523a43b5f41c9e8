"""R3 kill -9 the api mid-request; R4 kill -9 redis-server (AOF everysec).

Real processes, each killed by its own pid, under load from an in-process client
that records every send in a ledger; the checker then reads the channel logs.
"""

from __future__ import annotations

import time

import aiohttp
import anyio
import pytest

from broker.redis_conn import connect, keys_for
from broker.redis_server import RedisProcess
from tests.conftest import MANAGER_TOKEN
from tests.faults.conftest import settings_for
from tests.faults.ledger import Ledger, check, read_channel
from tests.faults.load import LoadClient, LoadStats, Workload, run_load


async def check_ledger(settings, ledger: Ledger, before=None):
    redis = connect(settings.redis_url)
    try:
        return await check(redis, keys_for(settings), ledger, before=before)
    finally:
        await redis.aclose()


async def check_clean(settings, ledger: Ledger, before=None):
    report, states = await check_ledger(settings, ledger, before)
    assert report.clean, report.summary()
    return report, states


async def api_kill_case(procs, aof_redis, *, total: int, rate: float, kills: int):
    settings = settings_for(aof_redis)
    api = procs.api(settings)
    ledger, stats = Ledger(), LoadStats()
    duration = total / rate
    async with aiohttp.ClientSession() as session:
        client = LoadClient(session, lambda: api.url, MANAGER_TOKEN, ledger, stats)

        async def killer() -> None:
            for n in range(kills):
                await anyio.sleep(duration / (kills + 1))
                pid = api.pid
                api.kill9()
                assert not api.alive()
                await anyio.sleep(0.2)
                await anyio.to_thread.run_sync(procs.restart_api, api)
                assert api.pid != pid, f"restart {n} reused the pid"

        async with anyio.create_task_group() as tg:
            tg.start_soon(killer)
            await run_load(
                client, Workload.small(), total=total, rate=rate, retry_for=15.0
            )
    report, _ = await check_clean(settings, ledger)
    counts = ledger.counts()
    # The kills did hit requests in flight or refused connections...
    assert counts["unknown"] >= kills, (counts, stats.statuses)
    # ...and every message a client kept retrying ended up stored exactly once.
    assert report.unknown_not_stored == 0, report.summary()
    assert report.acked > 0
    return report, stats


async def test_kill_api_mid_request_retries_store_once(procs, aof_redis):
    await api_kill_case(procs, aof_redis, total=400, rate=150, kills=2)


@pytest.mark.slow
async def test_kill_api_full(procs, aof_redis):
    # R3's figures scaled to this box: 1,000 msg/s is the plan's target.
    report, stats = await api_kill_case(
        procs, aof_redis, total=20_000, rate=300, kills=3
    )
    print(f"R3 report: {report.summary()} statuses={dict(stats.statuses)}")


async def redis_kill_case(
    procs,
    aof_redis,
    *,
    total: int,
    rate: float,
    may_lose_tail: bool = False,
    **env: str,
):
    settings = settings_for(aof_redis)
    api = procs.api(settings, **env)
    ledger, stats = Ledger(), LoadStats()
    marks: dict[str, float] = {}
    epochs_before: dict = {}
    async with aiohttp.ClientSession() as session:
        client = LoadClient(session, lambda: api.url, MANAGER_TOKEN, ledger, stats)

        async def crash_redis() -> None:
            await anyio.sleep(total / rate / 3)
            admin = connect(settings.redis_url)
            try:
                for channel in ledger.channels():
                    state = await read_channel(admin, keys_for(settings), channel)
                    epochs_before[channel] = state.epoch
            finally:
                await admin.aclose()
            aof_redis.kill()
            marks["down"] = time.time()
            await anyio.sleep(1.5)
            marks["restart"] = time.time()  # no Redis at all between down and here
            await anyio.to_thread.run_sync(aof_redis.start)
            marks["up"] = time.time()

        readyz: list[tuple[float, int]] = []
        finished = anyio.Event()

        async def poll_readiness() -> None:
            while not finished.is_set():
                try:
                    async with session.get(f"{api.url}/readyz") as resp:
                        readyz.append((time.time(), resp.status))
                except aiohttp.ClientError:
                    readyz.append((time.time(), 0))
                await anyio.sleep(0.1)

        async with anyio.create_task_group() as tg:
            tg.start_soon(crash_redis)
            tg.start_soon(poll_readiness)
            await run_load(
                client, Workload.small(), total=total, rate=rate, retry_for=15.0
            )
            finished.set()
        assert api.alive(), api.log_text()
    report, states = await check_ledger(settings, ledger)
    down, restart, up = marks["down"], marks["restart"], marks["up"]
    if may_lose_tail and report.lost:
        # appendfsync everysec: while a background fsync runs, Redis holds new AOF
        # data in memory for up to 2 s and still replies. A crash then loses those
        # acks, and their seqs are given again (seen as retry_mismatch): only ever
        # the last seconds before the crash.
        assert min(report.lost_acked_at) > down - 3.0, report.summary()
        assert report.retry_mismatch <= report.lost, report.summary()
        print(
            f"everysec lost {report.lost} acks from the last seconds before the crash"
        )
        report.lost = report.retry_mismatch = 0
    assert report.clean, report.summary()
    # While Redis was down the api refused (503), never acknowledged.
    during = [s for t, s in stats.timeline if down + 0.2 < t < restart]
    assert 503 in during, stats.statuses
    assert 200 not in during, "a send was acknowledged while Redis was down"
    # It recovered by itself within 5 s of Redis being back.
    first_ok_after = min(t for t, s in stats.timeline if s == 200 and t > up)
    assert first_ok_after - up < 5.0
    # Readiness is red during the outage and green again within 5 s.
    outage = [s for t, s in readyz if down + 0.5 < t < restart]
    assert 503 in outage, readyz
    assert 200 not in outage, readyz
    assert min(t for t, s in readyz if s == 200 and t > up) - up < 5.0
    # A process crash loses nothing acknowledged: same epoch, dense seqs, no loss.
    for channel, epoch in epochs_before.items():
        assert states[channel].epoch == epoch, channel
    return report, stats, first_ok_after - up


async def test_kill_redis_everysec_loses_at_most_the_last_seconds(procs, aof_redis):
    await redis_kill_case(procs, aof_redis, total=900, rate=200, may_lose_tail=True)


async def test_kill_redis_with_appendfsync_always_loses_nothing(procs, tmp_path):
    server = procs.redis(RedisProcess(tmp_path / "always", appendfsync="always"))
    await redis_kill_case(procs, server, total=600, rate=150)


async def test_kill_redis_in_strict_mode(procs, valkey):
    # R5 under R4's fault: acks only after WAITAOF confirmed the fsync.
    await redis_kill_case(
        procs, valkey, total=600, rate=150, JINDOU_DURABILITY="strict"
    )


@pytest.mark.slow
async def test_kill_redis_full(procs, aof_redis):
    report, stats, recovery = await redis_kill_case(
        procs, aof_redis, total=15_000, rate=300, may_lose_tail=True
    )
    print(
        f"R4 report: {report.summary()} statuses={dict(stats.statuses)} "
        f"recovery={recovery:.2f}s p50={stats.percentile(0.5) * 1000:.1f}ms "
        f"p99={stats.percentile(0.99) * 1000:.1f}ms"
    )
