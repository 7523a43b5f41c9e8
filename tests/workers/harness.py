"""Real worker processes for tests, plus helpers to wait for fan-out to finish."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from broker.channels import person_channel_id
from broker.conversations import ConversationService
from broker.gateway.presence import ConnRecord, Presence
from broker.redis_conn import keys_for
from broker.settings import Settings
from tests.conftest import REPO_ROOT, process_env

GROUP = b"fanout"
# Long runs need `JINDOU_SLOW=1 pytest -m slow` (the suite's convention).
SLOW_ONLY = pytest.mark.skipif(
    os.environ.get("JINDOU_SLOW") != "1", reason="long run: JINDOU_SLOW=1 -m slow"
)


class Workers:
    """Spawns `python -m broker worker` children of this checkout; stops them all."""

    def __init__(self, settings: Settings, log_dir: Path, **env: str) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.env = env
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, **env: str) -> subprocess.Popen[bytes]:
        n = len(self.procs)
        log = open(self.log_dir / f"worker-{n}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "broker", "worker"],
            cwd=REPO_ROOT,
            env=process_env(self.settings, **{**self.env, **env}),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()

    def terminate(self, proc: subprocess.Popen[bytes], timeout: float = 20) -> int:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout)
        return proc.returncode

    @property
    def alive(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.procs if p.poll() is None]

    def logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace") for p in sorted(self.log_dir.glob("*.log"))
        )

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs:
            try:
                proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def drained(redis, settings: Settings) -> bool:
    """True when every dispatch entry of every shard was processed and acked."""
    keys = keys_for(settings)
    for shard in range(settings.shards):
        stream = keys.dispatch(shard)
        if not await redis.exists(stream):
            continue
        info = await redis.xinfo_stream(stream)
        last = info["last-generated-id"]
        if info["length"] == 0 and last in (b"0-0", "0-0"):
            continue
        groups = {g["name"]: g for g in await redis.xinfo_groups(stream)}
        group = groups.get(GROUP) or groups.get(GROUP.decode())
        if group is None or group["pending"]:
            return False
        if _id(group["last-delivered-id"]) < _id(last):
            return False
    return True


async def wait_drained(
    redis, settings: Settings, timeout: float = 30.0, workers: Workers | None = None
) -> float:
    """Wait until fan-out caught up; return the seconds it took."""
    start = time.monotonic()
    while not await drained(redis, settings):
        if time.monotonic() - start > timeout:
            logs = workers.logs()[-4000:] if workers else ""
            raise TimeoutError(f"dispatch not drained within {timeout}s\n{logs}")
        await anyio.sleep(0.05)
    return time.monotonic() - start


def _id(value) -> tuple[int, int]:
    text = value.decode() if isinstance(value, bytes) else value
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


async def join(redis, settings: Settings, group: str, uids, channel_type: int = 2):
    """What `subscriber_add` does: members set, members_ver, conversations."""
    keys = keys_for(settings)
    channel = keys.channel(channel_type, group)
    await redis.sadd(channel.members, *uids)
    await redis.hincrby(channel.meta, "members_ver", 1)
    await ConversationService(redis, keys, settings.large_channel).members_joined(
        channel_type, group, uids
    )


async def leave(redis, settings: Settings, group: str, uids, channel_type: int = 2):
    keys = keys_for(settings)
    channel = keys.channel(channel_type, group)
    await redis.srem(channel.members, *uids)
    await redis.hincrby(channel.meta, "members_ver", 1)
    await ConversationService(redis, keys, settings.large_channel).members_left(
        channel_type, group, uids
    )


def person(a: str, b: str) -> str:
    return person_channel_id(a, b)


async def connect(
    redis, settings: Settings, uid: str, conn_id: str, node_id: str, flag: int = 0
) -> None:
    """Register a connection the way an api node does (the gateway's registry:
    the ``conns`` write and its presence-change entry, which workers' caches
    follow)."""
    presence = Presence(redis, keys_for(settings), settings.node_heartbeat_ms)
    level = 0 if flag else 1
    await presence.register(uid, ConnRecord(conn_id, node_id, flag, level))
