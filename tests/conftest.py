"""Shared fixtures: a private redis-server per session, a key prefix per test."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import hypothesis
import pytest
from aiohttp.test_utils import TestClient, TestServer

from broker.http.app import create_app
from broker.redis_conn import connect
from broker.redis_server import RedisProcess, free_port
from broker.settings import Settings

MANAGER_TOKEN = "test-manager-token-0123456789"

# Property tests judge behaviour, not speed: on a loaded 2-core box one example can
# take longer than Hypothesis's 200 ms deadline, which would fail a correct test.
hypothesis.settings.register_profile(
    "jindou", deadline=None, suppress_health_check=[hypothesis.HealthCheck.too_slow]
)
hypothesis.settings.load_profile("jindou")


@pytest.fixture(scope="session")
def anyio_backend() -> tuple[str, dict[str, bool]]:
    return ("asyncio", {"use_uvloop": os.environ.get("JINDOU_TEST_UVLOOP") == "1"})


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path_factory.mktemp("redis"), appendonly=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def key_prefix() -> str:
    return f"t{secrets.token_hex(4)}:"


@pytest.fixture
def settings(redis_server: RedisProcess, key_prefix: str) -> Settings:
    return Settings(
        redis_url=redis_server.url,
        manager_token=MANAGER_TOKEN,
        key_prefix=key_prefix,
        shards=16,
        uvloop=False,
        # Never the fixed default ports: a child `jindou api` binds these.
        api_addr=f"127.0.0.1:{free_port()}",
        ws_addr=f"127.0.0.1:{free_port()}",
        # Tests send as users far faster than a person; test_user_send_rate.py
        # covers the limit.
        user_send_rate=0.0,
    )


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[object]:
    client = connect(settings.redis_url)
    yield client
    # Delete only this test's keys; the server is private, but stay tidy.
    async for key in client.scan_iter(match=f"{settings.key_prefix}*", count=1000):
        await client.delete(key)
    await client.aclose()


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[ApiClient]:
    async with TestClient(TestServer(create_app(settings))) as client:
        yield ApiClient(client)


class ApiClient:
    """A test client that sends the manager token and returns (status, json)."""

    def __init__(self, client: TestClient, token: str = MANAGER_TOKEN) -> None:
        self.client = client
        self.token = token

    @property
    def app(self):
        return self.client.server.app

    async def post(self, path: str, body: object, **headers: str):
        resp = await self.client.post(
            path, json=body, headers={"token": self.token, **headers}
        )
        return resp.status, await resp.json()

    async def get(self, path: str, **params: object):
        resp = await self.client.get(
            path,
            params={k: str(v) for k, v in params.items()},
            headers={"token": self.token},
        )
        return resp.status, await resp.json()


def data_dir(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.mkdir()
    return path


REPO_ROOT = Path(__file__).resolve().parent.parent


def process_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment for a `python -m broker ...` child running this checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JINDOU_")}
    env.update(
        PYTHONPATH=str(REPO_ROOT),
        JINDOU_REDIS_URL=settings.redis_url,
        JINDOU_MANAGER_TOKEN=settings.manager_token,
        JINDOU_KEY_PREFIX=settings.key_prefix,
        JINDOU_SHARDS=str(settings.shards),
        JINDOU_API_ADDR=settings.api_addr,
        JINDOU_WS_ADDR=settings.ws_addr,
        **extra,
    )
    return env
