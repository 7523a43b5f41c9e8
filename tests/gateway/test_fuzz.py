"""Fuzzing the socket protocol (S7, short): random frames on an authenticated
connection are each answered by an error or a result, or end in a close with a
protocol code; the node keeps serving and no connection is left registered."""

from __future__ import annotations

import gc
import json
import random
import tracemalloc

import anyio
import pytest
from aiohttp import WSMsgType

from tests.gateway.conftest import gateway_settings, start_node

CLOSE_CODES = {1000, 1002, 1003, 1007, 1009}
METHODS = ["send", "ping", "recvack", "connect", "disconnect", "channel.messagesync"]


def random_json(rng: random.Random, depth: int = 0):
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 1, 2**63, 2**70, rng.randrange(-1000, 1000)])
    if kind == 3:
        return rng.random() * 1e6
    if kind == 4:
        return "".join(chr(rng.randrange(1, 0x3000)) for _ in range(rng.randrange(8)))
    if kind == 5:
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = ["channelId", "channelType", "payload", "header", "messageId", "limit", "x"]
    return {
        rng.choice(keys): random_json(rng, depth + 1) for _ in range(rng.randrange(5))
    }


def random_frame(rng: random.Random) -> str | bytes:
    kind = rng.randrange(6)
    if kind <= 2:
        frame = {"method": rng.choice([*METHODS, "nope"]), "params": random_json(rng)}
        if rng.random() < 0.8:
            frame["id"] = random_json(rng) if rng.random() < 0.3 else "f"
        return json.dumps(frame)
    if kind == 3:
        return json.dumps(random_json(rng))
    if kind == 4:
        text = json.dumps({"id": "f", "method": "send", "params": random_json(rng)})
        cut = rng.randrange(len(text))
        return text[:cut]  # truncated JSON
    return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))


async def fuzz(node, rng, client, frames: int, outcomes: dict[str, int]):
    """Send ``frames`` random frames, each with a ping probe; reconnect after a
    close. Returns the client connected at the end."""
    for _ in range(frames):
        frame = random_frame(rng)
        if isinstance(frame, bytes):
            await client.ws.send_bytes(frame)
        else:
            await client.ws.send_str(frame)
        await client.ws.send_str('{"id":"probe","method":"ping"}')
        with anyio.fail_after(5):
            while True:
                msg = await client.ws.receive()
                if msg.type is not WSMsgType.TEXT:
                    assert client.ws.close_code in CLOSE_CODES, (frame, msg)
                    outcomes["closed"] += 1
                    client = await node.login("fuzz")
                    break
                reply = json.loads(msg.data)
                if reply.get("id") == "probe":
                    outcomes["answered"] += 1
                    break
                assert "error" in reply or "result" in reply or "method" in reply
    return client


async def test_random_frames_get_an_answer_or_a_close(node):
    rng = random.Random(20261125)
    outcomes = {"answered": 0, "closed": 0}
    client = await fuzz(node, rng, await node.login("fuzz"), 300, outcomes)
    assert outcomes["answered"] > 100
    assert outcomes["closed"] > 5
    await client.close()
    with anyio.fail_after(3):
        while await node.services.redis.hlen(node.services.keys.connections("fuzz")):
            await anyio.sleep(0.02)
    assert len(node.gateway.hub) == 0


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_fuzzing_keeps_no_python_objects(node_settings, redis):
    """Per-connection leaks, by the Python heap rather than RSS: between frame 500
    and frame 3,000 (with the reconnects after each close) the heap must not grow."""
    rng = random.Random(20261126)
    outcomes = {"answered": 0, "closed": 0}
    # Every reconnect comes from 127.0.0.1: lift the per-IP caps (tested apart).
    uncapped = gateway_settings(
        node_settings, ws_conn_rate_per_ip=0, ws_max_conns_per_ip=0
    )
    async with start_node(uncapped) as node:
        await _heap_growth(node, rng, outcomes)


async def _heap_growth(node, rng, outcomes: dict[str, int]) -> None:
    tracemalloc.start(1)
    try:
        client = await fuzz(node, rng, await node.login("fuzz"), 500, outcomes)
        gc.collect()
        before = tracemalloc.take_snapshot()
        client = await fuzz(node, rng, client, 2_500, outcomes)
        await anyio.sleep(0.3)  # closing sockets finish their clean-up
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    await client.close()
    growth = sum(d.size_diff for d in after.compare_to(before, "filename"))
    print(f"S7 heap: {growth} bytes over 2,500 frames, {outcomes}")
    assert outcomes["closed"] > 50  # the reconnects are part of what is measured
    assert growth < 64 * 1024, growth
