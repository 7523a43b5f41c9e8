"""S9 rate limits, against a real ``jindou api`` process: one connection floods
sends, one IP opens connections past its caps, and a well-behaved client alongside
stays fast."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import aiohttp
import anyio

from broker.errors import Reason
from tests.gateway.conftest import api_process

SEND_RATE, SEND_BURST = 20, 40  # the defaults (JINDOU_WS_SEND_RATE/_BURST)
MAX_CONNS, CONN_RATE, CONN_BURST = 12, 10, 20


def send_frame(rid: int) -> str:
    params = {
        "channelId": "victim",
        "channelType": 1,
        "clientMsgNo": f"flood-{rid}",
        "payload": base64.b64encode(b'{"type":1,"content":"spam"}').decode(),
    }
    return json.dumps({"id": str(rid), "method": "send", "params": params})


async def flood(ws: aiohttp.ClientWebSocketResponse, count: int, seconds: float):
    """Send ``count`` sends spread over ``seconds``; (accepted, rate-limited,
    other, elapsed) once every reply is in."""
    replies: dict[str, dict] = {}

    async def read() -> None:
        while len(replies) < count:
            frame = json.loads((await ws.receive()).data)
            if "id" in frame:
                replies[frame["id"]] = frame

    started = time.monotonic()
    async with anyio.create_task_group() as tg:
        tg.start_soon(read)
        for rid in range(count):
            await ws.send_str(send_frame(rid))
            await anyio.sleep(
                max(0.0, started + rid * seconds / count - time.monotonic())
            )
    elapsed = time.monotonic() - started
    accepted = limited = other = 0
    for frame in replies.values():
        result, error = frame.get("result") or {}, frame.get("error") or {}
        if result.get("reasonCode") == Reason.SUCCESS:
            accepted += 1
        elif Reason.RATE_LIMIT in (result.get("reasonCode"), error.get("code")):
            limited += 1
        else:
            other += 1
    return accepted, limited, other, elapsed


async def pings(client, latencies: list[float], stop: anyio.Event) -> None:
    while not stop.is_set():
        started = time.monotonic()
        reply = await client.call("ping")
        assert reply["result"] is None
        latencies.append(time.monotonic() - started)
        await anyio.sleep(0.01)


async def test_flooding_sender_and_connection_storm_are_limited(settings, redis):
    async with api_process(
        settings,
        JINDOU_WS_MAX_CONNS_PER_IP=str(MAX_CONNS),
        JINDOU_WS_CONN_RATE_PER_IP=str(CONN_RATE),
        JINDOU_WS_CONN_BURST_PER_IP=str(CONN_BURST),
    ) as api:
        good = await api.login(redis, "good")
        bad = await api.login(redis, "bad")
        latencies: list[float] = []
        stop = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(pings, good, latencies, stop)
            accepted, limited, other, elapsed = await flood(bad.ws, 1_000, 1.0)
            stop.set()
        # One connection: at most the burst plus what the rate refilled meanwhile.
        assert accepted <= SEND_BURST + SEND_RATE * elapsed + 1, (accepted, elapsed)
        assert accepted >= SEND_BURST, accepted
        assert (limited, other) == (1_000 - accepted, 0)
        latencies.sort()
        p99 = latencies[int(0.99 * (len(latencies) - 1))]
        print(f"S9: {accepted} of 1000 accepted in {elapsed:.2f} s, good p99 {p99:.3f}")
        assert p99 < 0.150, latencies[-5:]

        # One IP opens 40 connections at once: 2 are open (good, bad), so the
        # concurrent cap leaves room for MAX_CONNS - 2; the rest get 429.
        statuses: list[int] = []
        bodies: list[dict] = []
        held: list[aiohttp.ClientWebSocketResponse] = []

        async def attempt() -> None:
            try:
                held.append(await api.http.ws_connect(api.ws_url))
                statuses.append(101)
            except aiohttp.WSServerHandshakeError as exc:
                statuses.append(exc.status)

        await asyncio.gather(*(attempt() for _ in range(40)))
        assert statuses.count(101) == MAX_CONNS - 2, statuses
        assert statuses.count(429) == 40 - (MAX_CONNS - 2), statuses
        async with api.http.get(api.ws_url.replace("ws://", "http://")) as resp:
            assert resp.status == 429
            bodies.append(await resp.json())
        assert bodies[0]["status"] == 429
        assert "too many" in bodies[0]["msg"]
        # A refused client is served again once it is under the caps.
        for ws in held:
            await ws.close()
        await anyio.sleep(1.0)
        assert (await (await api.login(redis, "later")).call("ping"))["result"] is None
