"""Figures for docs/reliability.md: strict-durability latency cost and a short soak.

    python -m tests.faults.measure durability [--sends 2000]
    python -m tests.faults.measure soak --minutes 3 [--rate 200] [--kill-every 60]
        [--workers N] [--ws-clients N] [--churn 0.01] [--retention N] [--out FILE]

Everything runs on private servers on free loopback ports, stopped by pid at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import msgspec
import psutil

from broker.redis_conn import connect, keys_for
from broker.redis_server import RedisProcess
from broker.settings import Settings
from tests.conftest import MANAGER_TOKEN
from tests.faults.cluster import create_groups
from tests.faults.ledger import (
    Ledger,
    channel_members,
    check,
    check_projections,
    dispatch_drained,
)
from tests.faults.load import LoadClient, LoadStats, Workload, run_load
from tests.faults.procs import (
    ApiChild,
    Child,
    ProcessGroup,
    ValkeyProcess,
    valkey_server_path,
)
from tests.faults.soak_verdict import verdict
from tests.faults.soak_ws import WsPopulation, identities


def settings_for(server: RedisProcess, **changes: Any) -> Settings:
    base = Settings(
        redis_url=server.url,
        manager_token=MANAGER_TOKEN,
        key_prefix=f"m{secrets.token_hex(3)}:",
        shards=16,
    )
    return msgspec.structs.replace(base, **changes)


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


async def _latency(api: ApiChild, sends: int, concurrency: int) -> dict[str, Any]:
    ledger, stats = Ledger(), LoadStats()
    async with aiohttp.ClientSession() as session:
        client = LoadClient(session, lambda: api.url, MANAGER_TOKEN, ledger, stats)
        started = time.monotonic()
        await run_load(
            client,
            Workload.small(),
            total=sends,
            rate=1e9,
            concurrency=concurrency,
            resend_fraction=0.0,
            prefix=f"l{concurrency}-",
        )
        elapsed = time.monotonic() - started
    return {
        "concurrency": concurrency,
        "sends": sends,
        "ok": len(stats.latencies_ok),
        "p50_ms": ms(stats.percentile(0.5)),
        "p99_ms": ms(stats.percentile(0.99)),
        "msg_per_s": round(len(stats.latencies_ok) / elapsed),
    }


def durability(sends: int) -> list[dict[str, Any]]:
    cases: list[tuple[str, Callable[[Path], RedisProcess], str]] = [
        ("redis everysec, normal", lambda d: RedisProcess(d), "normal"),
        (
            "redis always, strict",
            lambda d: RedisProcess(d, appendfsync="always"),
            "strict",
        ),
    ]
    if valkey_server_path():
        cases += [
            ("valkey everysec, normal", lambda d: ValkeyProcess(d), "normal"),
            ("valkey everysec, strict (WAITAOF)", lambda d: ValkeyProcess(d), "strict"),
        ]
    rows = []
    for name, make, mode in cases:
        tmp = Path(tempfile.mkdtemp(prefix="jd-measure-"))
        group = ProcessGroup(tmp)
        try:
            server = group.redis(make(tmp / "data"))
            api = group.api(settings_for(server), JINDOU_DURABILITY=mode)
            for concurrency in (1, 16):
                row = anyio.run(_latency, api, sends, concurrency)
                rows.append({"case": name, **row})
                print(json.dumps(rows[-1]))
        finally:
            group.close()
            shutil.rmtree(tmp, ignore_errors=True)
    return rows


def _sample(procs: dict[str, int]) -> dict[str, Any]:
    out: dict[str, Any] = {"t": round(time.time())}
    for name, pid in procs.items():
        try:
            p = psutil.Process(pid)
            out[name] = {
                "pid": pid,
                "rss_mb": round(p.memory_info().rss / 2**20, 1),
                "fds": p.num_fds(),
            }
        except psutil.Error:
            out[name] = None
    return out


async def _dispatch_pending(redis: Any, keys: Any) -> int:
    """Entries read by a worker and not acknowledged yet, over every shard."""
    total = 0
    for shard in range(keys.shards):
        with contextlib.suppress(Exception):  # no stream or no group yet
            total += (await redis.xpending(keys.dispatch(shard), "fanout"))["pending"]
    return total


@dataclass
class SoakPlan:
    minutes: float
    rate: float
    kill_every: float
    workers: int
    ws_clients: int = 0
    churn: float = 0.01
    retention: int = 0
    sample_every: float = 10.0


async def _soak(
    group: ProcessGroup,
    server: RedisProcess,
    api: ApiChild,
    workers: list[Child],
    settings: Settings,
    plan: SoakPlan,
) -> dict[str, Any]:
    ledger, stats = Ledger(), LoadStats()
    samples: list[dict[str, Any]] = []
    total = int(plan.minutes * 60 * plan.rate)
    kills = 0
    workload = Workload.small(dms=50, groups=20, group_size=8)
    keys = keys_for(settings)
    probe = connect(settings.redis_url)
    population = None
    if plan.ws_clients:
        members = sorted({m for spec in workload.channels for m in spec.members})
        population = WsPopulation(
            f"{api.ws_url}/",  # the api child listens on a port of its own
            probe,
            keys,
            identities(members, plan.ws_clients),
            plan.churn,
        )
    async with aiohttp.ClientSession() as session:
        client = LoadClient(session, lambda: api.url, MANAGER_TOKEN, ledger, stats)
        await create_groups(session, api.url, workload)  # subscribers: group unread
        done = anyio.Event()

        async def monitor() -> None:
            nonlocal kills
            started = last_kill = time.monotonic()
            while not done.is_set():
                with anyio.move_on_after(plan.sample_every):
                    await done.wait()
                pids = {"api": api.pid, "redis": server.pid}
                pids.update({f"worker{n}": w.pid for n, w in enumerate(workers)})
                sample = _sample(pids)
                sample["elapsed_s"] = round(time.monotonic() - started)
                sample["acked"] = len(stats.latencies_ok)
                with contextlib.suppress(Exception):  # Redis may be busy: skip a point
                    sample["pel"] = await _dispatch_pending(probe, keys)
                    info = await probe.info("memory")
                    sample["used_memory"] = info["used_memory"]
                if population is not None:
                    sample["ws"] = population.counters.as_dict()
                samples.append(sample)
                print(json.dumps(sample), flush=True)
                if plan.kill_every and time.monotonic() - last_kill >= plan.kill_every:
                    api.kill9()
                    await anyio.to_thread.run_sync(group.restart_api, api)
                    if workers:  # and one worker, in turn
                        victim = workers[kills % len(workers)]
                        victim.kill9()
                        victim.start()
                    kills += 1
                    last_kill = time.monotonic()

        async with anyio.create_task_group() as tg:
            tg.start_soon(monitor)
            if population is not None:
                tg.start_soon(population.run)
            await run_load(
                client,
                workload,
                total=total,
                rate=plan.rate,
                retry_for=15.0,
                # Well inside the retention of every channel (see run_load).
                resend_window=plan.retention,
            )
            done.set()
            if population is not None:
                population.stop.set()
    try:
        report, states = await check(probe, keys, ledger)
        if workers:  # projections are the workers' work: wait for them, then compare
            with anyio.fail_after(120):
                while not await dispatch_drained(probe, keys):
                    await anyio.sleep(0.2)
            recipients = await channel_members(probe, keys, states)
            await check_projections(probe, keys, ledger, states, recipients, report)
        used_memory = (await probe.info("memory"))["used_memory"]
    finally:
        await probe.aclose()
    result = {
        "minutes": plan.minutes,
        "rate": plan.rate,
        "sends": total,
        "kills": kills,
        "workers": len(workers),
        "ws_clients": plan.ws_clients,
        "retention": plan.retention,
        "rows_checked": report.rows_checked,
        "outcomes": dict(ledger.counts()),
        "statuses": {str(k): v for k, v in stats.statuses.items()},
        "p50_ms": ms(stats.percentile(0.5)),
        "p99_ms": ms(stats.percentile(0.99)),
        "violations": report.violations(),
        "acked": report.acked,
        "stored": report.stored,
        "redis_used_memory_mb": round(used_memory / 2**20, 1),
        "ws": population.counters.as_dict() if population is not None else None,
        "samples": samples,
    }
    result["verdict"] = verdict(result, warmup_s=min(300.0, plan.minutes * 60 / 4))
    return result


def soak(plan: SoakPlan, out: Path | None = None) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="jd-soak-"))
    group = ProcessGroup(tmp)
    try:
        server = group.redis(RedisProcess(tmp / "data"))
        settings = settings_for(server, retention_maxlen=plan.retention)
        env = {
            # Children get settings from the environment (process_env names only a
            # few), so retention is passed here; all WebSocket clients share one IP.
            "JINDOU_RETENTION_MAXLEN": str(plan.retention),
            "JINDOU_WS_MAX_CONNS_PER_IP": "0",
            "JINDOU_WS_CONN_RATE_PER_IP": "0",
        }
        api = group.api(settings, **env)
        children = [group.worker(settings, **env) for _ in range(plan.workers)]
        result = anyio.run(_soak, group, server, api, children, settings, plan)
    finally:
        group.close()
        shutil.rmtree(tmp, ignore_errors=True)
    summary = {k: v for k, v in result.items() if k != "samples"}
    print(json.dumps(summary), flush=True)
    if out is not None:
        out.write_text(json.dumps(result, indent=1))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.faults.measure")
    sub = parser.add_subparsers(dest="what", required=True)
    d = sub.add_parser("durability")
    d.add_argument("--sends", type=int, default=2000)
    s = sub.add_parser("soak")
    s.add_argument("--minutes", type=float, default=3.0)
    s.add_argument("--rate", type=float, default=200.0)
    s.add_argument("--kill-every", type=float, default=60.0)
    s.add_argument(
        "--workers",
        type=int,
        default=0,
        help="worker processes (then projections "
        "are checked, and each kill also kills one worker)",
    )
    s.add_argument("--ws-clients", type=int, default=0, help="WebSocket clients")
    s.add_argument(
        "--churn", type=float, default=0.01, help="share of clients reopened a minute"
    )
    s.add_argument("--retention", type=int, default=0, help="JINDOU_RETENTION_MAXLEN")
    s.add_argument("--sample-every", type=float, default=10.0, help="seconds")
    s.add_argument("--out", type=Path, help="write the whole result (samples) here")
    args = parser.parse_args()
    if args.what == "durability":
        durability(args.sends)
    else:
        plan = SoakPlan(
            args.minutes,
            args.rate,
            args.kill_every,
            args.workers,
            args.ws_clients,
            args.churn,
            args.retention,
            args.sample_every,
        )
        result = soak(plan, args.out)
        raise SystemExit(0 if result["verdict"]["pass"] else 1)


if __name__ == "__main__":
    main()
