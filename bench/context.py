"""What every scenario gets: options, a scratch dir, the generators, progress."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.cluster import REPO_ROOT, Cluster
from bench.httpgen import HttpLoad


class GeneratorError(RuntimeError):
    pass


@dataclass
class Context:
    quick: bool
    root: Path
    http: HttpLoad
    say: Callable[[str], None]
    runs: int = 3
    # Seconds of one measured run; --quick keeps each scenario to a few seconds.
    duration: float = 8.0
    warmup: float = 2.0
    extra: dict[str, Any] = field(default_factory=dict)

    def scale(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    @contextmanager
    def cluster(self, name: str, *, shards: int = 128) -> Iterator[Cluster]:
        """A fresh redis-server (+ whatever the scenario starts), closed after."""
        with Cluster(self.root / name, shards=shards) as cluster:
            yield cluster


def run_python(
    module: str, args: list[str], *, timeout: float, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run ``python -m <module> ...`` as a separate process; parse its JSON line."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    out = proc.stdout.decode()
    for line in out.splitlines():
        if line.startswith("JSON "):
            data: dict[str, Any] = json.loads(line[5:])
            return data
    raise GeneratorError(
        f"{module} exited with {proc.returncode} without a result:\n"
        f"{(out + proc.stderr.decode())[-2000:]}"
    )
