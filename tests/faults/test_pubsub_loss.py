"""R7: the node's pub/sub connection is lost under load with clients connected.

An api and a worker process, a WebSocket client for every user, sends recorded in a
ledger. Faults: ``CLIENT KILL TYPE pubsub`` at random moments (one of them with new
connections refused for a second, so readiness can be seen failing), and the api
stopped (SIGSTOP) for 3 s while its node channel is flooded, until Redis drops its
subscriber at the pubsub output-buffer limit. Each client is told to resync and
catches up by offset; the checker then finds every stored message at every member's
client (``client_lost`` = 0), and the logs and projections exact.
"""

from __future__ import annotations

import random
import signal
import time
from dataclasses import dataclass, field

import aiohttp
import anyio
import pytest

from broker.redis_conn import connect, keys_for
from broker.redis_server import RedisProcess
from tests.conftest import MANAGER_TOKEN
from tests.faults.cluster import (
    LiveRun,
    create_groups,
    final_check,
    live_clients,
    node_ids,
    subscribed,
    wait_subscribed,
    warm_up,
)
from tests.faults.conftest import settings_for
from tests.faults.load import LoadClient, Workload, run_load

# Small enough that a few MB published to a stopped subscriber trip it at once.
PUBSUB_LIMIT = "pubsub 256kb 128kb 1"


@dataclass
class Readyz:
    """/readyz answers: (sent at, answered at, status, body)."""

    samples: list[tuple[float, float, int, str]] = field(default_factory=list)

    async def poll(self, session: aiohttp.ClientSession, url: str, period: float):
        while True:
            started = time.time()
            try:
                async with session.get(f"{url}/readyz") as resp:
                    body = await resp.text()
                    self.samples.append((started, time.time(), resp.status, body))
            except aiohttp.ClientError:
                pass
            await anyio.sleep(period)

    def within(self, start: float, end: float) -> list[tuple[int, str]]:
        return [(s, b) for t0, t1, s, b in self.samples if t0 >= start and t1 <= end]


@dataclass
class Kill:
    at: float
    killed: int
    resubscribed_after: float
    held: float = 0.0


async def kill_pubsub(admin, keys, node_id: str, *, hold: float = 0.0) -> Kill:
    """CLIENT KILL TYPE pubsub; with ``hold``, Redis refuses new connections for
    that long first (maxclients at the current count), so the node stays
    unsubscribed. Returns the time to resubscribe, counted from the kill (or from
    the end of the hold)."""
    restore = None
    if hold:
        clients = int((await admin.info("clients"))["connected_clients"])
        pubsub = len(await admin.client_list(_type="pubsub"))
        restore = (await admin.config_get("maxclients"))["maxclients"]
        await admin.config_set("maxclients", clients - pubsub)
    at = time.time()
    killed = int(await admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub"))
    if restore is not None:
        await anyio.sleep(hold)
        assert not await subscribed(admin, keys, node_id), "subscribed despite hold"
        await admin.config_set("maxclients", restore)
    return Kill(at, killed, await wait_subscribed(admin, keys, node_id), hold)


async def pubsub_kill_case(procs, tmp_path, *, total: int, rate: float, kills: int):
    server = procs.redis(RedisProcess(tmp_path / "redis", appendonly=False))
    settings = settings_for(server)
    api = procs.api(settings)
    procs.worker(settings)
    keys = keys_for(settings)
    workload = Workload.small(dms=3, groups=2, group_size=4)
    run = LiveRun()
    readyz = Readyz()
    done: list[Kill] = []
    duration = total / rate
    rng = random.Random(11)
    # Random moments, at least 0.4 s apart; the held kill comes last.
    moments = sorted(rng.uniform(0.05, 0.8) * duration for _ in range(kills))
    for i in range(1, len(moments)):
        moments[i] = max(moments[i], moments[i - 1] + 0.4)
    admin = connect(settings.redis_url)
    try:
        (node_id,) = await node_ids(admin, keys)
        async with aiohttp.ClientSession() as session:
            client = LoadClient(
                session, lambda: api.url, MANAGER_TOKEN, run.ledger, run.stats
            )
            await create_groups(session, api.url, workload)
            async with live_clients(session, api, workload, run) as tg:
                await warm_up(client, workload, run.users, run.ledger)
                tg.start_soon(readyz.poll, session, api.url, 0.02)

                async def killer() -> None:
                    started = time.monotonic()
                    for moment in moments:
                        await anyio.sleep(max(0.0, started + moment - time.monotonic()))
                        done.append(await kill_pubsub(admin, keys, node_id))
                    done.append(await kill_pubsub(admin, keys, node_id, hold=1.0))

                async with anyio.create_task_group() as load:
                    load.start_soon(killer)
                    await run_load(
                        client, workload, total=total, rate=rate, retry_for=15.0
                    )
                report, _ = await final_check(settings, run)
                tg.cancel_scope.cancel()
    finally:
        await admin.aclose()

    assert report.clean, report.summary()
    assert len(done) == kills + 1
    for kill in done:
        assert kill.killed >= 1  # the node's subscriber (and the worker's, if any)
        assert kill.resubscribed_after <= 2.0, done
    # Readiness: failing with the pubsub check while the node could not resubscribe,
    # green again once it did, and green far from any kill.
    held = done[-1]
    during = readyz.within(held.at + 0.3, held.at + held.held)
    assert during and all(s == 503 and "pubsub" in b for s, b in during), during
    kill_times = [k.at for k in done]
    quiet = [
        s
        for t0, _, s, _ in readyz.samples
        if min(abs(t0 - k) for k in kill_times) > 3.5
        and not held.at < t0 < held.at + held.held + 3.5
    ]
    assert all(s == 200 for s in quiet), quiet
    # Every client was told to resync after each kill and caught up by offset.
    for user in run.users.values():
        assert user.resyncs >= len(done), (user.uid, user.resyncs)
        assert user.catchups >= 1
    return report, run, done


async def test_pubsub_kills_resync_clients_lose_nothing(procs, tmp_path):
    await pubsub_kill_case(procs, tmp_path, total=500, rate=100, kills=5)


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_pubsub_kills_full(procs, tmp_path):
    report, run, done = await pubsub_kill_case(
        procs, tmp_path, total=6_000, rate=200, kills=5
    )
    gap_fills = sum(
        len(seqs - user.live.get(ch, set()))
        for user in run.users.values()
        for ch, seqs in user.synced.items()
    )
    resubscribed = [round(k.resubscribed_after, 3) for k in done]
    print(
        f"R7 kills: resubscribed after {resubscribed} s"
        f" (last one after a {done[-1].held} s hold); report {report.summary()};"
        f" outcomes {dict(run.ledger.counts())}; rows {report.rows_checked};"
        f" seqs only got by sync {gap_fills}"
    )


async def stop_and_flood(
    api, admin, keys, node_id: str, *, stopped_for: float, flood_mb: int
) -> dict[str, float]:
    """SIGSTOP the api, publish ``flood_mb`` MB of junk to its node channel (never
    delivered: Redis drops the subscriber at the pubsub output-buffer limit), SIGCONT
    it after ``stopped_for`` seconds. Returns the figures."""
    api.signal(signal.SIGSTOP)
    stopped = time.monotonic()
    junk = b"\xc1" * (1 << 20)  # 0xc1 is no msgpack type: undecodable if read
    published = 0
    dropped_after = 0.0
    for _ in range(flood_mb):
        await admin.publish(keys.node_channel(node_id), junk)
        published += 1
        if not await subscribed(admin, keys, node_id):
            dropped_after = time.monotonic() - stopped
            break
    assert dropped_after, "Redis kept the stopped subscriber"
    await anyio.sleep(max(0.0, stopped + stopped_for - time.monotonic()))
    api.signal(signal.SIGCONT)
    return {
        "published_mb": published,
        "dropped_after_s": round(dropped_after, 3),
        "resubscribed_after_s": round(await wait_subscribed(admin, keys, node_id), 3),
    }


async def stopped_node_case(procs, tmp_path, *, total: int, rate: float):
    server = procs.redis(RedisProcess(tmp_path / "redis", appendonly=False))
    settings = settings_for(server)
    keys = keys_for(settings)
    admin = connect(settings.redis_url)
    try:
        await admin.config_set("client-output-buffer-limit", PUBSUB_LIMIT)
        api = procs.api(settings)  # the clients' node, to be stopped
        (node_id,) = await node_ids(admin, keys)
        sender = procs.api(settings)  # takes the sends while the other is stopped
        procs.worker(settings)
        workload = Workload.small(dms=3, groups=2, group_size=4)
        run = LiveRun()
        figures: dict[str, float] = {}
        async with aiohttp.ClientSession() as session:
            client = LoadClient(
                session, lambda: sender.url, MANAGER_TOKEN, run.ledger, run.stats
            )
            await create_groups(session, sender.url, workload)
            async with live_clients(session, api, workload, run) as tg:
                await warm_up(client, workload, run.users, run.ledger)

                async def stopper() -> None:
                    await anyio.sleep(total / rate / 3)
                    figures.update(
                        await stop_and_flood(
                            api, admin, keys, node_id, stopped_for=3.0, flood_mb=50
                        )
                    )

                async with anyio.create_task_group() as load:
                    load.start_soon(stopper)
                    await run_load(
                        client, workload, total=total, rate=rate, retry_for=15.0
                    )
                report, _ = await final_check(settings, run)
                tg.cancel_scope.cancel()
    finally:
        await admin.aclose()
    assert report.clean, report.summary()
    assert figures["resubscribed_after_s"] <= 2.0, figures
    assert api.alive()
    for user in run.users.values():
        assert user.resyncs >= 1, user.uid
        assert user.close_code is None or user.close_code == 1000, user.close_code
    return report, run, figures


async def test_stopped_node_dropped_by_redis_clients_catch_up(procs, tmp_path):
    await stopped_node_case(procs, tmp_path, total=900, rate=100)


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_stopped_node_full(procs, tmp_path):
    report, run, figures = await stopped_node_case(
        procs, tmp_path, total=6_000, rate=200
    )
    print(
        f"R7 SIGSTOP: {figures}; report {report.summary()};"
        f" outcomes {dict(run.ledger.counts())}; rows {report.rows_checked}"
    )
