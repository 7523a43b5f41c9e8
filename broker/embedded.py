"""``jindou up``: a private redis-server with AOF, one api and one worker."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from broker.processes import stop_process
from broker.redis_server import RedisProcess
from broker.settings import Settings, split_addr

log = logging.getLogger(__name__)

TOKEN_FILE = "manager_token"  # noqa: S105 - a file name


def manager_token(data_dir: Path) -> str:
    """The manager token kept in the data dir (0600), made on first start."""
    path = data_dir / TOKEN_FILE
    if path.exists():
        return path.read_text().strip()
    token = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def _spawn(role: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "broker", role], env=env)  # noqa: S603


def _local(addr: str) -> str:
    """``host:port`` as a local client reaches it (a wildcard host → 127.0.0.1)."""
    host, port = split_addr(addr)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
    return f"{shown}:{port}"


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop


def run_embedded(settings: Settings, data_dir: Path) -> int:
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    token = settings.manager_token or manager_token(data_dir)
    redis: RedisProcess | None = None
    children: list[subprocess.Popen[bytes]] = []
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    try:
        redis_url = settings.redis_url
        if not redis_url:
            redis = RedisProcess(data_dir / "redis", appendonly=True).start()
            redis_url = redis.url
        env = {
            **os.environ,
            "JINDOU_REDIS_URL": redis_url,
            "JINDOU_MANAGER_TOKEN": token,
        }
        env.pop("JINDOU_MANAGER_TOKEN_FILE", None)
        children = [_spawn("api", env), _spawn("worker", env)]
        api_url = "http://" + _local(settings.api_addr)
        ws_url = "ws://" + _local(settings.ws_addr)
        sys.stdout.write(
            f"Jindou is up.\n  API:           {api_url}\n"
            f"  manager token: {token}\n  WebSocket:     {ws_url}\n"
            f"  data dir:      {data_dir.resolve()}\nPress Ctrl-C to stop.\n"
        )
        sys.stdout.flush()
        while all(child.poll() is None for child in children):
            time.sleep(0.2)
        log.error("a child process exited; stopping everything")
        return 1
    except _Stop:
        return 0
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for child in children:
            stop_process(child, settings.shutdown_grace)
        if redis is not None:
            redis.stop()
