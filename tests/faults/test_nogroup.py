"""R6 with workers: after Redis lost its data, running workers recover from NOGROUP
by themselves and the projections of the new epoch are exact."""

from __future__ import annotations

import shutil
import time

import aiohttp
import anyio
import pytest

from broker.redis_conn import connect, keys_for
from tests.conftest import MANAGER_TOKEN
from tests.faults.conftest import settings_for
from tests.faults.ledger import Ledger, check, check_projections, dispatch_drained
from tests.faults.load import LoadClient, LoadStats, Workload, run_load

# Needs the fan-out workers (conversations, unread); skipped in a checkout without them.
pytest.importorskip("workers.coordinator")


async def drained_within(settings, timeout: float) -> float:
    redis = connect(settings.redis_url)
    started = time.monotonic()
    try:
        while not await dispatch_drained(redis, keys_for(settings)):
            assert time.monotonic() - started < timeout, "dispatch not drained"
            await anyio.sleep(0.1)
    finally:
        await redis.aclose()
    return time.monotonic() - started


async def test_workers_recover_from_nogroup_after_data_loss(procs, aof_redis):
    settings = settings_for(aof_redis)
    api = procs.api(settings)
    worker = procs.worker(settings)
    workload = Workload.small(dms=6, groups=0)
    async with aiohttp.ClientSession() as session:
        before = Ledger()
        client = LoadClient(
            session, lambda: api.url, MANAGER_TOKEN, before, LoadStats()
        )
        await run_load(client, workload, total=120, rate=200, prefix="old")
        await drained_within(settings, 15.0)

        aof_redis.kill()
        shutil.rmtree(aof_redis.data_dir)
        aof_redis.start()

        after = Ledger()
        client = LoadClient(session, lambda: api.url, MANAGER_TOKEN, after, LoadStats())
        await run_load(client, workload, total=60, rate=200, prefix="new")
    # No manual step: the running worker recreates its group and catches up.
    recovery = await drained_within(settings, 10.0)
    assert worker.alive(), worker.log_text()
    redis = connect(settings.redis_url)
    try:
        keys = keys_for(settings)
        report, states = await check(redis, keys, after)
        members = {ch: sorted(ch[1].split("@")) for ch in states}
        await check_projections(redis, keys, after, states, members, report)
    finally:
        await redis.aclose()
    assert report.clean, report.summary()
    assert report.rows_checked >= 2 * len(states)
    # Only the new epoch's messages exist; none from before the loss came back.
    stored = {e.message.client_msg_no for st in states.values() for e in st.entries}
    assert stored and all(cmn.startswith("new") for cmn in stored)
    assert recovery < 10.0
