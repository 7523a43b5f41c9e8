"""R14: at-least-once webhooks through real `jindou worker` processes.

5,000 events; the receiver fails the first 3 attempts of ~10% of deliveries, always
fails a fixed set, answers slowly on 5%, and goes down for a while midway; one worker
is killed with SIGKILL while it holds unqueued outbox entries and a fresh one started.
The default run shortens the outage and the back-off; `-m slow` runs the 60 s outage.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import zlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
from webhook_helpers import (
    SECRET,
    enqueue,
    event_ids_in,
    notify_event,
    offline_event,
    status_event,
    wait_until,
)

from broker.redis_conn import keys_for
from tests.conftest import REPO_ROOT, process_env
from workers.webhook_store import GROUP


@dataclass(frozen=True)
class Scenario:
    outage: float
    backoff_base: float
    timeout: float
    slow_latency: float
    reclaim_after: float
    finish_within: float
    max_attempts: int = 8
    notify: int = 3_000
    offline: int = 1_500
    status: int = 500


QUICK = Scenario(
    outage=1.0,
    backoff_base=0.05,
    timeout=1.0,
    slow_latency=0.1,
    reclaim_after=1.0,
    finish_within=60,
)
# R14 as written: a 60 s outage, 2 s latency on 5%, 8 attempts over ~5 min here
# (base 2.5 s; the production default of 5 s stretches the same schedule to ~10 min).
# The outage must use fewer than 8 attempts even with a lost (killed) one: with base
# 2.5 s it uses at most 5 (attempts at 0, 2, 6, 14, 30 s with the lowest jitter).
FULL = Scenario(
    outage=60.0,
    backoff_base=2.5,
    timeout=5.0,
    slow_latency=2.0,
    reclaim_after=5.0,
    finish_within=600,
)


def bucket(delivery_id: str, n: int) -> int:
    return zlib.crc32(delivery_id.encode()) % n


class Workers:
    """`python -m broker worker` children of this checkout; all stopped at the end."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        with self.log(len(self.procs)).open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "broker", "worker"],
                cwd=REPO_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.procs.append(proc)
        return proc

    def log(self, index: int) -> Path:
        return self.log_dir / f"worker-{index}.log"

    def sending(self, index: int) -> bool:
        """The worker's webhook sender has started (it logs that line first)."""
        return b"webhook sender" in self.log(index).read_bytes()

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


def consumer_of(proc: subprocess.Popen[bytes]) -> str:
    return f"{socket.gethostname()}:{proc.pid}:"


async def pending_of(redis, keys, proc) -> int:
    consumers = await redis.xinfo_consumers(keys.webhook_outbox, GROUP)
    prefix = consumer_of(proc).encode()
    return sum(
        int(c["pending"]) for c in consumers if bytes(c["name"]).startswith(prefix)
    )


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def run_scenario(sc: Scenario, settings, redis, receiver, tmp_path) -> dict:
    keys = keys_for(settings)
    all_events = (
        [notify_event(i) for i in range(sc.notify)]
        + [offline_event(i) for i in range(sc.offline)]
        + [status_event(i) for i in range(sc.status)]
    )
    forced = {f"o-{i}" for i in range(0, sc.offline, sc.offline // 20)}
    receiver.always_fail = lambda delivery_id, _body: delivery_id in forced
    receiver.fail_times = lambda delivery_id, _body: (
        3 if bucket(delivery_id, 10) == 0 else 0
    )
    receiver.latency = lambda delivery_id: (
        sc.slow_latency if bucket(delivery_id, 20) == 7 else 0.0
    )
    env = process_env(
        settings,
        JINDOU_WEBHOOK_URL=f"{receiver.url}/hook",
        JINDOU_WEBHOOK_SECRET=SECRET,
        JINDOU_WEBHOOK_BACKOFF_BASE=str(sc.backoff_base),
        JINDOU_WEBHOOK_MAX_ATTEMPTS=str(sc.max_attempts),
        JINDOU_WEBHOOK_TIMEOUT=str(sc.timeout),
        JINDOU_WEBHOOK_RECLAIM_AFTER=str(sc.reclaim_after),
    )
    workers = Workers(env, tmp_path)
    chunks = [all_events[i::10] for i in range(10)]
    figures: dict = {}
    try:
        victim, survivor = workers.start(), workers.start()
        await wait_until(
            lambda: workers.sending(0) and workers.sending(1), 30, "workers up"
        )
        for chunk in chunks[:4]:
            await enqueue(redis, settings, chunk)
            await anyio.sleep(0.2)
        await wait_until(lambda: len(receiver.delivered()) > 0, 30, "first deliveries")
        figures["rss_before_mb"] = rss_mb(survivor.pid)
        receiver.outage = True
        outage_started = time.monotonic()
        await enqueue(redis, settings, chunks[4])
        # Kill the victim while it holds outbox entries it has not queued yet.
        figures["victim_pending_at_kill"] = 0
        for chunk in chunks[5:7]:
            await enqueue(redis, settings, chunk)
            if not figures["victim_pending_at_kill"]:
                figures["victim_pending_at_kill"] = await pending_of(
                    redis, keys, victim
                )
                if figures["victim_pending_at_kill"]:
                    victim.send_signal(signal.SIGKILL)
        if victim.poll() is None and victim.returncode is None:
            victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        workers.start()
        await anyio.sleep(max(0.0, sc.outage - (time.monotonic() - outage_started)))
        figures["rss_outage_end_mb"] = rss_mb(survivor.pid)
        figures["backlog_at_outage_end"] = await redis.hlen(keys.webhook_jobs)
        receiver.outage = False
        for chunk in chunks[7:]:
            await enqueue(redis, settings, chunk)
            await anyio.sleep(0.2)

        expected = {event_id for event_id, _, _ in all_events} - forced

        def delivered_events() -> set[str]:
            return {
                eid
                for hit in receiver.delivered()
                for eid in event_ids_in(hit.event, hit.body)
            }

        async def finished() -> bool:
            return (
                delivered_events() == expected
                and await redis.xlen(keys.webhook_dead) == len(forced)
                and await redis.hlen(keys.webhook_jobs) == 0
            )

        async def explain() -> str:
            missing = expected - delivered_events()
            dead = [f[b"id"] for _, f in await redis.xrange(keys.webhook_dead)]
            return (
                f"missing {len(missing)} e.g. {sorted(missing)[:5]}; "
                f"dead {len(dead)}, unexpected {sorted(set(dead) - forced)[:5]}; "
                f"jobs {await redis.hlen(keys.webhook_jobs)}, "
                f"outbox {await redis.xlen(keys.webhook_outbox)}"
            )

        started = time.monotonic()
        await wait_until(
            finished, sc.finish_within, "every event delivered or dead", explain
        )
        figures["drain_seconds"] = round(time.monotonic() - started, 1)
        figures["rss_after_mb"] = rss_mb(survivor.pid)
        # Clean shutdown of the survivors.
        for proc in workers.procs[1:]:
            proc.send_signal(signal.SIGTERM)
        for proc in workers.procs[1:]:
            assert proc.wait(15) == 0
    finally:
        workers.stop_all()

    # -- every event id arrived; duplicates only as retries of the same delivery
    deliveries_of_event: dict[str, set[str]] = defaultdict(set)
    hits_of_delivery = defaultdict(list)
    for hit in receiver.hits:
        hits_of_delivery[hit.delivery_id].append(hit)
        for eid in event_ids_in(hit.event, hit.body):
            deliveries_of_event[eid].add(hit.delivery_id)
    assert set(deliveries_of_event) == expected | forced
    assert all(len(ids) == 1 for ids in deliveries_of_event.values())
    for hits in hits_of_delivery.values():
        assert len({(h.event, h.body) for h in hits}) == 1
        attempts = [h.attempt for h in hits]
        assert len(set(attempts)) == len(attempts)  # each POST is a distinct attempt
        assert max(attempts) <= sc.max_attempts
    # -- signatures verify on 100% of requests
    assert all(h.signature_ok for h in receiver.hits)
    # -- the dead-letter stream holds exactly the events forced to fail
    dead = await redis.xrange(keys.webhook_dead)
    assert {fields[b"id"].decode() for _, fields in dead} == forced
    assert {fields[b"n"] for _, fields in dead} == {str(sc.max_attempts).encode()}
    assert not forced & receiver.delivered_ids()
    # -- nothing left behind
    assert await redis.xlen(keys.webhook_outbox) == 0
    assert (await redis.xpending(keys.webhook_outbox, GROUP))["pending"] == 0
    assert await redis.zcard(keys.webhook_due) == 0
    assert figures["victim_pending_at_kill"] > 0
    figures.update(
        requests=len(receiver.hits),
        deliveries=len(receiver.delivered()),
        retried=sum(1 for hits in hits_of_delivery.values() if len(hits) > 1),
    )
    return figures


async def test_webhooks_at_least_once_through_failures_outage_and_kill(
    settings, redis, receiver, tmp_path
):
    figures = await run_scenario(QUICK, settings, redis, receiver, tmp_path)
    # The backlog lives in Redis: worker memory stays flat through the outage.
    assert figures["rss_outage_end_mb"] - figures["rss_before_mb"] < 30
    assert figures["rss_after_mb"] - figures["rss_before_mb"] < 30
    print("R14 quick:", figures)


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.skipif(
    os.environ.get("JINDOU_SLOW") != "1", reason="long run: JINDOU_SLOW=1 -m slow"
)
async def test_webhooks_at_least_once_with_60s_outage(
    settings, redis, receiver, tmp_path
):
    figures = await run_scenario(FULL, settings, redis, receiver, tmp_path)
    assert figures["backlog_at_outage_end"] > 0
    assert figures["rss_outage_end_mb"] - figures["rss_before_mb"] < 30
    assert figures["rss_after_mb"] - figures["rss_before_mb"] < 30
    print("R14 full:", figures, "pid", os.getpid())
