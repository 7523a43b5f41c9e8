"""Fuzzing the socket protocol (S7, short): random frames on an authenticated
connection are each answered by an error or a result, or end in a close with a
protocol code; the node keeps serving and no connection is left registered."""

from __future__ import annotations

import json
import random

import anyio
from aiohttp import WSMsgType

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


async def test_random_frames_get_an_answer_or_a_close(node):
    rng = random.Random(20261125)
    outcomes = {"answered": 0, "closed": 0}
    client = await node.login("fuzz")
    for _ in range(300):
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
    assert outcomes["answered"] > 100
    assert outcomes["closed"] > 5
    await client.close()
    with anyio.fail_after(3):
        while await node.services.redis.hlen(node.services.keys.connections("fuzz")):
            await anyio.sleep(0.02)
    assert len(node.gateway.hub) == 0
