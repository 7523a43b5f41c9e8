"""Gateway fixtures: an api node (HTTP app + WebSocket gateway on one Services),
the fan-out stand-in, and small raw-WebSocket helpers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import msgspec
import pytest
from aiohttp import ClientSession, ClientWebSocketResponse, WSMsgType
from aiohttp.test_utils import RawTestServer, TestClient, TestServer

from broker.gateway.server import Gateway
from broker.http.app import create_app
from broker.redis_conn import connect, keys_for
from broker.services import Services, close_services, open_services
from broker.settings import Settings
from broker.users import store_token
from tests.conftest import MANAGER_TOKEN, REPO_ROOT, ApiClient, process_env
from tests.gateway.fanout import FanoutHelper


@dataclass
class Node:
    services: Services
    gateway: Gateway
    ws_url: str
    api: ApiClient
    http: ClientSession

    async def token(self, uid: str, device_flag: int = 2, level: int = 0) -> str:
        token = f"tok-{uid}-{device_flag}"
        await store_token(
            self.services.redis, self.services.keys, uid, device_flag, token, level
        )
        return token

    async def raw(self, path: str = "/", **kwargs) -> ClientWebSocketResponse:
        return await self.http.ws_connect(self.ws_url + path, **kwargs)

    async def login(
        self, uid: str, device_flag: int = 2, device_id: str = "", level: int = 0
    ) -> RawClient:
        token = await self.token(uid, device_flag, level)
        client = RawClient(await self.raw())
        reply = await client.call(
            "connect",
            {
                "uid": uid,
                "token": token,
                "deviceFlag": device_flag,
                "deviceId": device_id or f"dev-{uid}-{device_flag}",
                "clientTimestamp": 1,
            },
        )
        assert reply["result"]["reasonCode"] == 1, reply
        return client


class RawClient:
    """A bare JSON-RPC client: frames in, dicts out; notifications are kept."""

    def __init__(self, ws: ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 0
        self.notes: list[dict] = []

    async def send_json(self, frame: object) -> None:
        await self.ws.send_str(json.dumps(frame))

    async def call(self, method: str, params: object = None, timeout: float = 5.0):
        self.next_id += 1
        rid = f"r{self.next_id}"
        frame: dict = {"id": rid, "method": method}
        if params is not None:
            frame["params"] = params
        await self.send_json(frame)
        with anyio.fail_after(timeout):
            while True:
                msg = await self.next_frame()
                if msg.get("id") == rid:
                    return msg

    async def next_frame(self) -> dict:
        """The next response; notifications are collected in ``notes``."""
        while True:
            msg = await self.ws.receive()
            if msg.type is not WSMsgType.TEXT:
                raise ConnectionError(f"socket closed: {msg.type} {msg.data}")
            frame = json.loads(msg.data)
            if "method" in frame and "id" not in frame:
                self.notes.append(frame)
                continue
            return frame

    async def notification(self, method: str = "recv", timeout: float = 5.0) -> dict:
        with anyio.fail_after(timeout):
            while True:
                for i, note in enumerate(self.notes):
                    if note["method"] == method:
                        return self.notes.pop(i)
                msg = await self.ws.receive()
                if msg.type is not WSMsgType.TEXT:
                    raise ConnectionError(f"socket closed: {msg.type} {msg.data}")
                self.notes.append(json.loads(msg.data))

    async def closed(self, timeout: float = 5.0) -> int | None:
        """Read until the socket closes; the code of the server's close frame, or
        the client's own close code if none came. (aiohttp's ``close_code`` turns
        1006 when its close reply cannot be written: a server that closed from
        another task than its reader drops the socket right after its frame.)"""
        with anyio.fail_after(timeout):
            while True:
                msg = await self.ws.receive()
                if msg.type is WSMsgType.CLOSE:
                    return msg.data
                if msg.type in (WSMsgType.CLOSED, WSMsgType.ERROR):
                    return self.ws.close_code
                if msg.type is WSMsgType.TEXT:
                    self.notes.append(json.loads(msg.data))

    async def close(self) -> None:
        await self.ws.close()


def gateway_settings(settings: Settings, **overrides) -> Settings:
    return msgspec.structs.replace(settings, **overrides)


@pytest.fixture
def node_settings(settings: Settings) -> Settings:
    """Short retry and heartbeat periods so tests run quickly."""
    return gateway_settings(settings, ws_retry_ms=300, node_heartbeat_ms=500)


@asynccontextmanager
async def start_node(settings: Settings) -> AsyncIterator[Node]:
    services = await open_services(settings)
    gateway = Gateway(services)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(gateway.run)
            with anyio.fail_after(5):
                await gateway.ready()
                while services.node_id not in await gateway.presence.live_nodes():
                    await anyio.sleep(0.01)
            ws_server = RawTestServer(gateway.handle, host="127.0.0.1")
            async with (
                TestClient(TestServer(create_app(settings, services))) as http,
                TestClient(ws_server) as ws_client,
            ):
                url = f"ws://127.0.0.1:{ws_server.port}"
                yield Node(services, gateway, url, ApiClient(http), ws_client.session)
                gateway.close_all()
            tg.cancel_scope.cancel()
    finally:
        await close_services(services)


@pytest.fixture
async def node(node_settings: Settings, redis) -> AsyncIterator[Node]:
    async with start_node(node_settings) as value:
        yield value


@pytest.fixture
async def fanout(node: Node, redis) -> AsyncIterator[FanoutHelper]:
    helper = FanoutHelper(
        redis, node.services.keys, node.services.settings.node_heartbeat_ms
    )
    async with anyio.create_task_group() as tg:
        await tg.start(helper.run)
        yield helper
        tg.cancel_scope.cancel()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ApiProcess:
    """A real ``jindou api`` child process (HTTP API + gateway) of this checkout."""

    proc: subprocess.Popen
    api_url: str
    ws_url: str
    settings: Settings
    http: ClientSession

    async def token(self, redis, uid: str, device_flag: int = 2) -> str:
        token = f"tok-{uid}-{device_flag}"
        keys = keys_for(self.settings)
        await store_token(redis, keys, uid, device_flag, token, 0)
        return token

    async def login(self, redis, uid: str) -> RawClient:
        token = await self.token(redis, uid)
        client = RawClient(await self.http.ws_connect(self.ws_url))
        reply = await client.call(
            "connect", {"uid": uid, "token": token, "deviceFlag": 2}
        )
        assert reply["result"]["reasonCode"] == 1, reply
        return client

    async def post(self, path: str, body: object):
        async with self.http.post(
            self.api_url + path, json=body, headers={"token": MANAGER_TOKEN}
        ) as resp:
            return resp.status, await resp.json()


@asynccontextmanager
async def api_process(settings: Settings, **env: str) -> AsyncIterator[ApiProcess]:
    api_port, ws_port = free_port(), free_port()
    settings = gateway_settings(
        settings,
        api_addr=f"127.0.0.1:{api_port}",
        ws_addr=f"127.0.0.1:{ws_port}",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "broker", "api"],
        cwd=REPO_ROOT,
        env=process_env(
            settings,
            JINDOU_UVLOOP=os.environ.get("JINDOU_TEST_UVLOOP", "0"),
            **env,
        ),
    )
    try:
        async with ClientSession() as http:
            api_url, ws_url = (
                f"http://127.0.0.1:{api_port}",
                f"ws://127.0.0.1:{ws_port}",
            )
            with anyio.fail_after(15):
                while True:
                    assert proc.poll() is None, "jindou api exited"
                    try:
                        async with http.get(api_url + "/health") as resp:
                            if resp.status == 200:
                                break
                    except OSError:
                        pass
                    await anyio.sleep(0.05)
                redis = connect(settings.redis_url)
                try:
                    while not await redis.zcard(keys_for(settings).nodes):
                        await anyio.sleep(0.05)
                finally:
                    await redis.aclose()
            yield ApiProcess(proc, api_url, ws_url, settings, http)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
