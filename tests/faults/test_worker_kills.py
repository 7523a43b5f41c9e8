"""R2 with the ledger: kill -9 workers under load, with read markers moving; every
projection (conversation rows, recent, unread from the badge) equals the model
computed from the log, and nothing acknowledged is lost."""

from __future__ import annotations

import random
import time

import aiohttp
import anyio
import pytest

from broker.redis_conn import connect, keys_for
from tests.conftest import MANAGER_TOKEN
from tests.faults.cluster import create_groups
from tests.faults.conftest import settings_for
from tests.faults.ledger import (
    OK,
    Ledger,
    channel_members,
    check,
    check_projections,
    dispatch_drained,
)
from tests.faults.load import LoadClient, LoadStats, Workload, run_load

# Needs the fan-out workers (conversations, unread); skipped in a checkout without them.
pytest.importorskip("workers.coordinator")


async def wait_drained(settings, timeout: float = 30.0) -> float:
    redis = connect(settings.redis_url)
    started = time.monotonic()
    try:
        while not await dispatch_drained(redis, keys_for(settings)):
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"dispatch not drained in {timeout}s")
            await anyio.sleep(0.1)
    finally:
        await redis.aclose()
    return time.monotonic() - started


async def worker_kill_case(procs, aof_redis, *, total: int, rate: float, kills: int):
    settings = settings_for(aof_redis)
    api = procs.api(settings)
    workers = [procs.worker(settings) for _ in range(2)]
    # DMs and groups: unread is checked for every subscriber of a group too.
    workload = Workload.small(dms=10, groups=3, group_size=4)
    ledger, stats = Ledger(), LoadStats()
    rng = random.Random(3)
    done = anyio.Event()
    async with aiohttp.ClientSession() as session:
        client = LoadClient(session, lambda: api.url, MANAGER_TOKEN, ledger, stats)
        await create_groups(session, api.url, workload)

        async def killer() -> None:
            for n in range(kills):
                await anyio.sleep(total / rate / (kills + 1))
                victim = workers[n % len(workers)]
                victim.kill9()
                await anyio.sleep(1.0)
                victim.start()

        async def reader() -> None:
            # Read markers move while messages flow (clearUnread = read up to now).
            while not done.is_set():
                await anyio.sleep(0.2)
                spec = rng.choice(workload.channels)
                uid, peer = rng.sample(spec.members, 2)
                named = peer if spec.channel_type == 1 else spec.channel_id
                channel = ledger.invoke(spec.channel_type, named, uid, "-").channel
                ledger.ops.pop()  # only used to name the channel
                lower = max(
                    (
                        op.seq
                        for op in ledger.ops
                        if op.outcome == OK and op.channel == channel
                    ),
                    default=0,
                )
                async with session.post(
                    f"{api.url}/conversations/clearUnread",
                    json={
                        "uid": uid,
                        "channel_id": named,
                        "channel_type": spec.channel_type,
                    },
                    headers={"token": MANAGER_TOKEN},
                ) as resp:
                    if resp.status == 200:
                        ledger.mark_read(uid, channel, lower)

        async with anyio.create_task_group() as tg:
            tg.start_soon(killer)
            tg.start_soon(reader)
            await run_load(client, workload, total=total, rate=rate, retry_for=15.0)
            done.set()
    drain_s = await wait_drained(settings)
    redis = connect(settings.redis_url)
    try:
        keys = keys_for(settings)
        report, states = await check(redis, keys, ledger)
        members = await channel_members(redis, keys, states)
        await check_projections(redis, keys, ledger, states, members, report)
    finally:
        await redis.aclose()
    assert report.clean, report.summary()
    # The projections were really compared, read markers included.
    assert report.rows_checked >= sum(
        len(members[ch]) for ch, st in states.items() if st.entries
    )
    assert any(ch[0] == 2 for ch in members)
    assert ledger.mark_reads
    assert all(w.alive() for w in workers)
    return report, drain_s


async def test_kill_workers_projections_stay_exact(procs, aof_redis):
    await worker_kill_case(procs, aof_redis, total=600, rate=120, kills=2)


@pytest.mark.slow
async def test_kill_workers_full(procs, aof_redis):
    report, drain_s = await worker_kill_case(
        procs, aof_redis, total=10_000, rate=200, kills=3
    )
    print(f"R2 report: {report.summary()} drained in {drain_s:.1f}s")
