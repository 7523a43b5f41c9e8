"""``jindou api`` serves the HTTP API and the gateway from one process."""

from __future__ import annotations

import signal

import anyio

from broker.gateway.session import CloseCode
from broker.redis_conn import keys_for
from tests.conftest import MANAGER_TOKEN
from tests.gateway.conftest import RawClient, api_process


async def test_api_process_serves_both_and_shuts_down_cleanly(settings, redis):
    async with api_process(settings) as api:
        alice = await api.login(redis, "alice")
        bob = await api.login(redis, "bob")
        status, body = await api.post("/user/onlinestatus", ["alice", "bob"])
        assert status == 200
        assert sorted(e["uid"] for e in body) == ["alice", "bob"]
        reply = await alice.call(
            "send",
            {
                "channelId": "bob",
                "channelType": 1,
                "payload": "aGk=",
                "clientMsgNo": "1",
            },
        )
        assert reply["result"]["messageSeq"] == 1
        # The HTTP API sees what the socket wrote: one Services, one store.
        status, body = await api.post(
            "/channel/messagesync",
            {"login_uid": "bob", "channel_id": "alice", "channel_type": 1, "limit": 5},
        )
        assert [m["message_seq"] for m in body["messages"]] == [1]
        async with api.http.get(api.api_url + "/readyz") as resp:
            assert resp.status == 200, await resp.text()  # includes the pubsub check
        api.proc.send_signal(signal.SIGTERM)
        assert await bob.closed(timeout=10) == CloseCode.GOING_AWAY
        with anyio.fail_after(10):
            while api.proc.poll() is None:
                await anyio.sleep(0.05)
        assert api.proc.returncode == 0
        keys = keys_for(api.settings)
        assert await redis.zcard(keys.nodes) == 0
        assert await redis.hlen(keys.connections("alice")) == 0


async def test_route_gives_the_address_clients_connect_to(settings, redis):
    """What a business server hands its app's SDK (GET /route) is where the
    gateway answers a connect."""
    async with api_process(settings) as api:
        async with api.http.get(
            api.api_url + "/route",
            params={"uid": "alice"},
            headers={"token": MANAGER_TOKEN},
        ) as resp:
            assert resp.status == 200
            body = await resp.json()
        assert body["ws_addr"] == api.ws_url
        token = await api.token(redis, "alice")
        client = RawClient(await api.http.ws_connect(body["ws_addr"]))
        reply = await client.call(
            "connect", {"uid": "alice", "token": token, "deviceFlag": 2}
        )
        assert reply["result"]["reasonCode"] == 1
        await client.close()
