"""The processes a scenario measures: a private redis-server, api and workers.

Every child is started by this module, remembered by its Popen handle and
stopped by pid when the cluster closes, also when the scenario fails.
"""

from __future__ import annotations

import contextlib
import os
import resource
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench.redis_binary import bench_redis_server
from broker import processes
from broker.redis_server import RedisProcess, free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
STOP_GRACE = 10.0


class ClusterError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Api:
    proc: subprocess.Popen[bytes]
    port: int
    ws_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}/"


def raise_fd_limit() -> None:
    """Lift the soft open-files limit to the hard one (idle-connection runs)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def stop_process(proc: subprocess.Popen[bytes], grace: float = STOP_GRACE) -> None:
    processes.stop_process(proc, grace)


def port_open(port: int) -> bool:
    with (
        contextlib.suppress(OSError),
        socket.create_connection(("127.0.0.1", port), timeout=0.2),
    ):
        return True
    return False


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child running this checkout, without our JINDOU_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JINDOU_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.update(extra)
    return env


class Cluster:
    """redis-server (AOF, appendfsync everysec) + api and worker processes."""

    def __init__(self, workdir: Path, *, shards: int = 128) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.shards = shards
        self.token = secrets.token_urlsafe(24)
        self.redis = RedisProcess(
            workdir / "redis",
            appendonly=True,
            appendfsync="everysec",
            binary=bench_redis_server(),
        )
        self.apis: list[Api] = []
        self.workers: list[subprocess.Popen[bytes]] = []
        self._children: list[subprocess.Popen[bytes]] = []

    # -- lifecycle ------------------------------------------------------------------
    def __enter__(self) -> Cluster:
        self.redis.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for proc in reversed(self._children):
            stop_process(proc)
        self._children.clear()
        self.redis.stop()

    def env(self, **extra: str) -> dict[str, str]:
        return child_env(
            JINDOU_REDIS_URL=self.redis.url,
            JINDOU_MANAGER_TOKEN=self.token,
            JINDOU_SHARDS=str(self.shards),
            JINDOU_LOG_LEVEL="WARNING",
            # Measure the broker, not the per-connection anti-abuse limiter: the
            # load generators send far more per connection than a person does.
            JINDOU_WS_SEND_RATE="100000",
            JINDOU_WS_SEND_BURST="100000",
            JINDOU_WS_REQUEST_RATE="100000",
            JINDOU_WS_REQUEST_BURST="100000",
            # All load comes from 127.0.0.1: the per-IP caps (S9) would refuse it.
            JINDOU_WS_MAX_CONNS_PER_IP="0",
            JINDOU_WS_CONN_RATE_PER_IP="0",
            **extra,
        )

    def spawn(
        self, argv: list[str], name: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start a child whose output goes to ``<workdir>/<name>.log``."""
        log = (self.workdir / f"{name}.log").open("ab")
        try:
            proc = subprocess.Popen(  # our own argv, no shell
                argv,
                cwd=REPO_ROOT,
                env=env or self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        finally:
            log.close()
        self._children.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        stop_process(proc)
        if proc in self._children:
            self._children.remove(proc)
        self.workers = [w for w in self.workers if w is not proc]
        self.apis = [a for a in self.apis if a.proc is not proc]

    # -- roles ----------------------------------------------------------------------
    def start_apis(
        self, count: int, timeout: float = 30.0, *, argv: list[str] | None = None
    ) -> list[Api]:
        """``count`` api processes (``argv``: another entry point than
        ``python -m broker api``, e.g. bench.api_without_redis)."""
        argv = argv or [sys.executable, "-m", "broker", "api"]
        started: list[Api] = []
        for _ in range(count):
            port, ws_port = free_port(), free_port()
            env = self.env(
                JINDOU_API_ADDR=f"127.0.0.1:{port}",
                JINDOU_WS_ADDR=f"127.0.0.1:{ws_port}",
            )
            name = f"api{len(self.apis) + len(started)}"
            proc = self.spawn(argv, name, env)
            started.append(Api(proc, port, ws_port))
        for api in started:
            self._wait_http(api, timeout)
        self.apis += started
        return started

    def start_workers(self, count: int) -> list[subprocess.Popen[bytes]]:
        started = [
            self.spawn(
                [sys.executable, "-m", "broker", "worker"],
                f"worker{len(self.workers) + i}",
            )
            for i in range(count)
        ]
        self.workers += started
        return started

    def _wait_http(self, api: Api, timeout: float) -> None:
        wait_healthy(api.url, api.proc, timeout, logs=self.workdir)

    def ws_listening(self, api: Api, timeout: float = 3.0) -> bool:
        """True once the api's WebSocket gateway accepts TCP connections."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if port_open(api.ws_port):
                return True
            time.sleep(0.1)
        return False


def wait_healthy(
    url: str,
    proc: subprocess.Popen[bytes],
    timeout: float = 30.0,
    logs: Path | None = None,
) -> None:
    """Wait until ``GET <url>/health`` answers 200; fail early if ``proc`` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ClusterError(
                f"{proc.args!r} exited with {proc.returncode}; see the logs in {logs}"
            )
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(f"{url}/health", timeout=1) as resp,
        ):
            if resp.status == 200:
                return
        time.sleep(0.05)
    raise ClusterError(f"{url} did not answer /health in {timeout:g} s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of stat; [0] here is field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    """User + system CPU of this process' children that have ended and been waited
    for (load generators: they end after each run, while the servers run on)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise ClusterError(f"no VmRSS for pid {pid}")
