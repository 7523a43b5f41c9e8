"""Acknowledged messages survive a redis-server crash (AOF, everysec); during the
outage the API answers 503 and acknowledges nothing; it recovers by itself."""

import time

import anyio
from aiohttp.test_utils import TestClient, TestServer

from broker.http.app import create_app
from broker.redis_server import RedisProcess
from broker.settings import Settings
from tests.api.helpers import send_body
from tests.conftest import MANAGER_TOKEN


async def test_acked_messages_survive_kill_9_and_outage_is_503(tmp_path):
    server = RedisProcess(tmp_path / "redis", appendonly=True).start()
    settings = Settings(
        redis_url=server.url, manager_token=MANAGER_TOKEN, key_prefix="r:", shards=8
    )
    headers = {"token": MANAGER_TOKEN}
    try:
        async with TestClient(TestServer(create_app(settings))) as client:
            acked = []
            for i in range(200):
                resp = await client.post(
                    "/message/send", headers=headers, json=send_body(payload=f"m{i}")
                )
                assert resp.status == 200
                acked.append((await resp.json())["data"]["message_id"])

            server.kill()  # SIGKILL: a crash of the Redis process
            started = time.monotonic()
            resp = await client.post(
                "/message/send",
                headers=headers,
                json=send_body(payload="during outage"),
            )
            assert resp.status == 503
            body = await resp.json()
            assert body["status"] == 503 and body["msg"]
            assert time.monotonic() - started < 5  # fails fast, no hanging request

            server.start()
            deadline = time.monotonic() + 5
            while True:  # recovers by itself, no restart of the api
                resp = await client.post(
                    "/message/send", headers=headers, json=send_body(payload="after")
                )
                if resp.status == 200 or time.monotonic() > deadline:
                    break
                await anyio.sleep(0.1)
            assert resp.status == 200
            assert (await resp.json())["data"]["message_seq"] == 201

            resp = await client.post(
                "/channel/messagesync",
                headers=headers,
                json={
                    "login_uid": "u",
                    "channel_id": "g1",
                    "channel_type": 2,
                    "start_message_seq": 1,
                    "pull_mode": 1,
                    "limit": 1000,
                },
            )
            messages = (await resp.json())["messages"]
            assert [m["message_id"] for m in messages[:200]] == acked
            assert [m["message_seq"] for m in messages] == list(range(1, 202))
    finally:
        server.stop()
