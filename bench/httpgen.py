"""Plain-HTTP load from a separate process: wrk with a Lua script, else aiohttp.

Both generators cycle through a file of request bodies (one per line) on
``connections`` keep-alive connections for ``duration`` seconds and report the
same JSON summary.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from bench.cluster import REPO_ROOT, children_cpu_seconds

WRK_MISSING = (
    "wrk is not installed; using the slower aiohttp generator (figures are then "
    "limited by the generator). Install wrk with: apt-get install -y wrk"
)

# Each wrk thread loads the bodies, starts at its own offset and cycles; `done`
# prints one JSON line the driver parses.
WRK_SCRIPT = r"""
local bodies = {}
local i = 0
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("offset", counter * 7919)
end
function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then bodies[#bodies + 1] = line end
  end
  i = (offset or 0) % #bodies
end
function request()
  i = i % #bodies + 1
  return wrk.format("POST", nil, nil, bodies[i])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'JSON {"requests":%d,"duration_us":%d,"errors":%d,"non2xx":%d,' ..
    '"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


class LoadError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class HttpRun:
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    # CPU seconds the generator process itself used (user + system).
    cpu_s: float = 0.0

    @property
    def rate(self) -> float:
        """Successful requests per second."""
        return (self.requests - self.errors) / self.seconds if self.seconds else 0.0


def parse_summary(output: str) -> HttpRun:
    for line in output.splitlines():
        if line.startswith("JSON "):
            data = json.loads(line[5:])
            return HttpRun(
                requests=int(data["requests"]),
                seconds=data["duration_us"] / 1e6,
                errors=int(data["errors"]),
                p50_ms=data["p50_us"] / 1000,
                p99_ms=data["p99_us"] / 1000,
                max_ms=data["max_us"] / 1000,
            )
    raise LoadError(f"the load generator printed no summary:\n{output[-2000:]}")


def wrk_path() -> str | None:
    return shutil.which("wrk")


class HttpLoad:
    """Starts generator processes; several targets run concurrently (2 api)."""

    def __init__(self, workdir: Path, *, prefer_wrk: bool = True) -> None:
        self.workdir = workdir
        self.wrk = wrk_path() if prefer_wrk else None
        self.script = workdir / "bodies.lua"
        self.script.write_text(WRK_SCRIPT)

    @property
    def name(self) -> str:
        return "wrk" if self.wrk else "aiohttp (python -m bench.httpload)"

    def command(
        self,
        url: str,
        bodies: Path,
        connections: int,
        duration: float,
        headers: dict[str, str],
    ) -> list[str]:
        if self.wrk:
            seconds = max(1, round(duration))  # wrk takes whole seconds
            argv = [
                self.wrk,
                "-t1",
                f"-c{connections}",
                f"-d{seconds}s",
                "--timeout",
                "10s",
                "-s",
                str(self.script),
            ]
            for key, value in headers.items():
                argv += ["-H", f"{key}: {value}"]
            return [*argv, url, "--", str(bodies)]
        argv = [
            sys.executable,
            "-m",
            "bench.httpload",
            url,
            str(bodies),
            "--connections",
            str(connections),
            "--duration",
            f"{duration:g}",
        ]
        for key, value in headers.items():
            argv += ["--header", f"{key}:{value}"]
        return argv

    def run(
        self,
        targets: list[str],
        bodies: Path,
        connections: int,
        duration: float,
        headers: dict[str, str],
    ) -> list[HttpRun]:
        """One generator per target URL, all at once; ``connections`` each."""
        before = children_cpu_seconds()
        procs = [
            subprocess.Popen(
                self.command(url, bodies, connections, duration, headers),
                cwd=REPO_ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            for url in targets
        ]
        try:
            outputs = [p.communicate(timeout=duration + 60)[0].decode() for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        # The generators are the only children that end meanwhile (the api and
        # Redis run on), so the children's CPU grew by theirs alone.
        share = (children_cpu_seconds() - before) / len(procs)
        return [replace(parse_summary(out), cpu_s=share) for out in outputs]


def combined(runs: list[HttpRun]) -> HttpRun:
    """Several generators that ran at once, as one: rates add, latencies worst."""
    seconds = max(r.seconds for r in runs)
    total = sum(r.rate for r in runs) * seconds
    errors = sum(r.errors for r in runs)
    return HttpRun(
        requests=int(total) + errors,
        seconds=seconds,
        errors=errors,
        p50_ms=max(r.p50_ms for r in runs),
        p99_ms=max(r.p99_ms for r in runs),
        max_ms=max(r.max_ms for r in runs),
        cpu_s=sum(r.cpu_s for r in runs),
    )
