"""``jindou bench``: run the scenarios, print the table, write the JSON."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import scenarios_http, scenarios_redis, scenarios_ws
from bench.cluster import raise_fd_limit
from bench.context import Context
from bench.figures import Figure, unavailable
from bench.httpgen import WRK_MISSING, HttpLoad
from bench.redis_binary import bench_redis_server
from bench.report import document, table


@dataclass(frozen=True, slots=True)
class Scenario:
    id: str
    title: str
    run: Callable[[Context], list[Figure]]
    cheap: bool  # part of the CI smoke subset
    # Run only when named: a diagnosis, not one of the figures.
    on_request: bool = False


SCENARIOS = [
    Scenario("B1", "POST /message/send, 1 api process", scenarios_http.b1, True),
    Scenario("B2", "POST /message/send, 2 api processes", scenarios_http.b2, False),
    Scenario("B3", "WebSocket send from 200 connections", scenarios_ws.b3, False),
    Scenario("B4", "end-to-end send -> recv at 2,000 msgs/s", scenarios_ws.b4, False),
    Scenario("B5", "group fan-out to 500 online members", scenarios_ws.b5, False),
    Scenario(
        "B6", "worker throughput on a dispatch backlog", scenarios_redis.b6, False
    ),
    Scenario(
        "B7", "/channel/messagesync, limit 100, hot channel", scenarios_http.b7, True
    ),
    Scenario("B8", "idle authenticated WebSocket connections", scenarios_ws.b8, False),
    Scenario("B9", "Redis memory per stored message", scenarios_http.b9, True),
    Scenario(
        "B1X",
        "B1 with the appends answered in the api, not by Redis (its ceiling)",
        scenarios_http.b1x,
        False,
        on_request=True,
    ),
    Scenario(
        "B2X",
        "B2 with the appends answered in the api, not by Redis (its ceiling)",
        scenarios_http.b2x,
        False,
        on_request=True,
    ),
]
BY_ID = {s.id: s for s in SCENARIOS}


# Above this share of all cores busy before the first scenario, the figures are
# taken on a machine that is doing something else too: the run says so.
BUSY_WARNING_SHARE = 0.25


def cpu_times(stat_text: str) -> tuple[int, int]:
    """(busy, total) jiffies of all cores from ``/proc/stat``'s ``cpu`` line. Pure."""
    for line in stat_text.splitlines():
        if line.startswith("cpu "):
            values = [int(v) for v in line.split()[1:]]
            idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
            return sum(values) - idle, sum(values)
    raise ValueError("no cpu line in /proc/stat")


def busy_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The share of all cores busy between two :func:`cpu_times` samples. Pure."""
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total > 0 else 0.0


def busy_warning(share: float | None) -> str | None:
    """What to tell the user about the cores' load before the run, if anything."""
    if share is None or share <= BUSY_WARNING_SHARE:
        return None
    return (
        f"the machine is busy before the run ({share:.0%} of all cores): "
        "the figures will be lower than on a quiet machine"
    )


def cpu_busy_now(seconds: float = 1.0) -> float | None:
    """The share of all cores busy over the next ``seconds``; None without /proc."""
    try:
        before = cpu_times(Path("/proc/stat").read_text())
        time.sleep(seconds)
        after = cpu_times(Path("/proc/stat").read_text())
    except (OSError, ValueError):
        return None
    return busy_share(before, after)


def machine() -> dict[str, Any]:
    """The machine, sampled before the first scenario starts."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal:")
        )
    except (OSError, StopIteration):
        mem_kb = 0
    redis_version = subprocess.run(
        [bench_redis_server(), "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "redis": redis_version,
        "python": platform.python_version(),
        "loadavg_at_start": os.getloadavg(),
        "cpu_busy_at_start": cpu_busy_now(),
    }


def _say(text: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {text}\n")
    sys.stderr.flush()


class UnknownScenario(ValueError):
    pass


def select(names: Sequence[str]) -> list[Scenario]:
    if not names:
        return [s for s in SCENARIOS if not s.on_request]
    unknown = [n for n in names if n.upper() not in BY_ID]
    if unknown:
        raise UnknownScenario(
            f"unknown scenario {', '.join(unknown)}; choose from {', '.join(BY_ID)}"
        )
    return [BY_ID[n.upper()] for n in names]


def run_bench(args: argparse.Namespace) -> int:
    try:
        chosen = select(args.scenarios)
    except UnknownScenario as exc:
        sys.stderr.write(f"jindou bench: {exc}\n")
        return 2
    if args.runs < 1:
        sys.stderr.write("jindou bench: --runs must be at least 1\n")
        return 2
    raise_fd_limit()
    scratch = Path(tempfile.mkdtemp(prefix="jindou-bench-"))
    http = HttpLoad(scratch)
    if http.wrk is None:
        _say(WRK_MISSING)
    duration = args.duration or (2.0 if args.quick else 8.0)
    ctx = Context(
        quick=args.quick,
        root=scratch,
        http=http,
        say=_say,
        runs=args.runs,
        duration=duration,
        warmup=1.0 if args.quick else 2.0,
    )
    host = machine()
    warning = busy_warning(host["cpu_busy_at_start"])
    if warning:
        _say(warning)
    figures: list[Figure] = []
    began = time.monotonic()
    for scenario in chosen:
        _say(f"{scenario.id}: {scenario.title}")
        try:
            figures += scenario.run(ctx)
        except Exception as exc:  # one broken scenario must not hide the others
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            _say(f"{scenario.id} failed: {exc!r} (logs in {scratch / scenario.id})")
            figures.append(
                unavailable(scenario.id, scenario.title, "", f"failed: {reason}")
            )
    elapsed = time.monotonic() - began
    text = table(figures)
    sys.stdout.write(text + "\n")
    if args.json:
        doc = document(
            figures,
            host,
            {
                "command": "jindou bench " + shlex.join(sys.argv[2:]),
                "quick": args.quick,
                "runs": args.runs,
                "duration_s": duration,
                "http_generator": http.name,
                "seconds": round(elapsed, 1),
            },
        )
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    if args.keep:
        _say(f"scratch dir kept: {scratch}")
    else:
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)
    return 0
