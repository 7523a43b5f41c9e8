"""Figures for docs/reliability.md: strict-durability latency cost and a short soak.

    python -m tests.faults.measure durability [--sends 2000]
    python -m tests.faults.measure soak --minutes 3 [--rate 200] [--kill-every 60]

Everything runs on private servers on free loopback ports, stopped by pid at the end.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
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
from tests.faults.ledger import Ledger, check, check_projections, dispatch_drained
from tests.faults.load import LoadClient, LoadStats, Workload, run_load
from tests.faults.procs import (
    ApiChild,
    Child,
    ProcessGroup,
    ValkeyProcess,
    valkey_server_path,
)


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
                "rss_mb": round(p.memory_info().rss / 2**20, 1),
                "fds": p.num_fds(),
            }
        except psutil.Error:
            out[name] = None
    return out


async def _soak(
    group: ProcessGroup,
    server: RedisProcess,
    api: ApiChild,
    workers: list[Child],
    settings: Settings,
    minutes: float,
    rate: float,
    kill_every: float,
) -> dict[str, Any]:
    ledger, stats = Ledger(), LoadStats()
    samples: list[dict[str, Any]] = []
    total = int(minutes * 60 * rate)
    kills = 0
    async with aiohttp.ClientSession() as session:
        client = LoadClient(session, lambda: api.url, MANAGER_TOKEN, ledger, stats)
        done = anyio.Event()

        async def monitor() -> None:
            nonlocal kills
            last_kill = time.monotonic()
            while not done.is_set():
                with anyio.move_on_after(10):
                    await done.wait()
                pids = {"api": api.pid, "redis": server.pid}
                pids.update({f"worker{n}": w.pid for n, w in enumerate(workers)})
                samples.append(_sample(pids))
                print(json.dumps(samples[-1]))
                if kill_every and time.monotonic() - last_kill >= kill_every:
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
            await run_load(
                client,
                Workload.small(dms=50, groups=20, group_size=8),
                total=total,
                rate=rate,
                retry_for=15.0,
            )
            done.set()
    redis = connect(settings.redis_url)
    try:
        keys = keys_for(settings)
        report, states = await check(redis, keys, ledger)
        if workers:  # projections are the workers' work: wait for them, then compare
            with anyio.fail_after(60):
                while not await dispatch_drained(redis, keys):
                    await anyio.sleep(0.2)
            members = {ch: sorted(ch[1].split("@")) for ch in states if ch[0] == 1}
            await check_projections(redis, keys, ledger, states, members, report)
        used_memory = (await redis.info("memory"))["used_memory"]
    finally:
        await redis.aclose()
    return {
        "minutes": minutes,
        "rate": rate,
        "sends": total,
        "kills": kills,
        "workers": len(workers),
        "rows_checked": report.rows_checked,
        "outcomes": dict(ledger.counts()),
        "statuses": {str(k): v for k, v in stats.statuses.items()},
        "p50_ms": ms(stats.percentile(0.5)),
        "p99_ms": ms(stats.percentile(0.99)),
        "violations": report.violations(),
        "acked": report.acked,
        "stored": report.stored,
        "redis_used_memory_mb": round(used_memory / 2**20, 1),
        "samples": samples,
    }


def soak(
    minutes: float, rate: float, kill_every: float, workers: int
) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="jd-soak-"))
    group = ProcessGroup(tmp)
    try:
        server = group.redis(RedisProcess(tmp / "data"))
        settings = settings_for(server)
        api = group.api(settings)
        children = [group.worker(settings) for _ in range(workers)]
        result = anyio.run(
            _soak, group, server, api, children, settings, minutes, rate, kill_every
        )
    finally:
        group.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}))
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
    args = parser.parse_args()
    if args.what == "durability":
        durability(args.sends)
    else:
        soak(args.minutes, args.rate, args.kill_every, args.workers)


if __name__ == "__main__":
    main()
