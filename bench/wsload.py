"""WebSocket load generator (a separate process; asyncio + uvloop + aiohttp).

Speaks the EasySDK JSON-RPC protocol (connect, send, recv, recvack) so the same
client drives the Jindou gateway and the bare broadcast baseline. Modes:

- ``send``: C connections each send person messages in a closed loop; reports
  sends/s and send→result latency.
- ``e2e``: senders send at a fixed total rate to receivers on other connections;
  reports send→recv latency.
- ``fanout-receive`` / ``fanout-send``: members of one group online in several
  receiver processes, one sender at rising rates; receivers report send->recv
  latencies per rate step (CLOCK_MONOTONIC is shared by the processes).
- ``idle``: open N authenticated connections, print ``READY``, hold them until
  stdin closes.

``python -m bench.wsload MODE URL --token T [options]`` prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from bench.latency import percentile
from bench.loop import run

_decode = msgspec.json.decode
_encode = msgspec.json.encode
DEVICE_FLAG = 1
CONNECT_BATCH = 50  # connections opened at once, like clients trickling in
WARMUP_STEP = -1  # the step index of fan-out warm-up messages (not reported)


class ProtocolError(RuntimeError):
    pass


def stamp_payload() -> str:
    """A payload carrying the send time (same process, monotonic clock)."""
    return base64.b64encode(_encode({"t": time.monotonic()})).decode()


def payload_time(payload: str) -> float:
    return float(_decode(base64.b64decode(payload))["t"])


@dataclass
class Conn:
    """One authenticated connection: requests by id, recv notifications to a hook."""

    ws: aiohttp.ClientWebSocketResponse
    uid: str
    on_recv: Callable[[dict[str, Any]], None] | None = None
    ack: bool = True
    waiting: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    ids: itertools.count[int] = field(default_factory=itertools.count)
    reader: asyncio.Task[None] | None = None

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        rid = str(next(self.ids))
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[rid] = fut
        await self.ws.send_str(
            _encode({"method": method, "id": rid, "params": params}).decode()
        )
        return await fut

    async def read_forever(self) -> None:
        async for msg in self.ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            frame = _decode(msg.data)
            method = frame.get("method")
            if method == "recv":
                params = frame["params"]
                if self.on_recv is not None:
                    self.on_recv(params)
                if self.ack:
                    await self.ws.send_str(
                        _encode(
                            {
                                "method": "recvack",
                                "params": {
                                    "header": params.get("header", {}),
                                    "messageId": params["messageId"],
                                    "messageSeq": params["messageSeq"],
                                },
                            }
                        ).decode()
                    )
            elif method is None and "id" in frame:
                fut = self.waiting.pop(str(frame["id"]), None)
                if fut is not None and not fut.done():
                    fut.set_result(frame)
        for fut in self.waiting.values():
            if not fut.done():
                fut.set_exception(ProtocolError(f"{self.uid}: connection closed"))

    async def send(
        self, channel_id: str, channel_type: int, payload: str
    ) -> dict[str, Any]:
        reply = await self.request(
            "send",
            {
                "channelId": channel_id,
                "channelType": channel_type,
                "clientMsgNo": uuid.uuid4().hex,
                "payload": payload,
                "header": {"redDot": True},
            },
        )
        result = reply.get("result")
        if not isinstance(result, dict) or result.get("reasonCode") != 1:
            raise ProtocolError(f"send refused: {reply}")
        return result


CONNECT_ATTEMPTS = 3


async def open_conn(
    session: aiohttp.ClientSession,
    url: str,
    uid: str,
    token: str,
    on_recv: Callable[[dict[str, Any]], None] | None = None,
) -> Conn:
    """Connect and authenticate; like a real client, try again when the server
    drops the socket (e.g. its auth deadline passed while it was overloaded)."""
    for attempt in range(1, CONNECT_ATTEMPTS + 1):
        try:
            return await _connect_once(session, url, uid, token, on_recv)
        except (ProtocolError, aiohttp.ClientError):
            if attempt == CONNECT_ATTEMPTS:
                raise
            await asyncio.sleep(0.2 * attempt)
    raise AssertionError("unreachable")


async def _connect_once(
    session: aiohttp.ClientSession,
    url: str,
    uid: str,
    token: str,
    on_recv: Callable[[dict[str, Any]], None] | None,
) -> Conn:
    ws = await session.ws_connect(url, heartbeat=None, autoping=True, max_msg_size=0)
    conn = Conn(ws, uid, on_recv)
    conn.reader = asyncio.get_running_loop().create_task(conn.read_forever())
    reply = await conn.request(
        "connect",
        {
            "uid": uid,
            "token": token,
            "deviceFlag": DEVICE_FLAG,
            "clientTimestamp": int(time.time() * 1000),
        },
    )
    result = reply.get("result")
    if not isinstance(result, dict) or result.get("reasonCode") != 1:
        await ws.close()
        raise ProtocolError(f"connect refused for {uid}: {reply}")
    return conn


async def open_many(
    session: aiohttp.ClientSession,
    url: str,
    uids: list[str],
    token: str,
    hook: Callable[[str], Callable[[dict[str, Any]], None] | None],
) -> list[Conn]:
    conns: list[Conn] = []
    for start in range(0, len(uids), CONNECT_BATCH):
        chunk = uids[start : start + CONNECT_BATCH]
        conns += await asyncio.gather(
            *(open_conn(session, url, uid, token, hook(uid)) for uid in chunk)
        )
    return conns


async def close_all(conns: list[Conn]) -> None:
    await asyncio.gather(*(c.ws.close() for c in conns), return_exceptions=True)
    for conn in conns:
        if conn.reader is not None:
            conn.reader.cancel()


def summary(latencies: list[float]) -> dict[str, float]:
    latencies.sort()
    return {
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": (latencies[-1] if latencies else 0.0) * 1000,
        "count": len(latencies),
    }


def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))


# -- modes ------------------------------------------------------------------------
async def mode_send(args: argparse.Namespace) -> dict[str, Any]:
    """Closed loop: each connection sends its next message when the last returned."""
    latencies: list[float] = []
    async with _session() as session:
        conns = await open_many(
            session,
            args.url,
            [f"s{i}" for i in range(args.first, args.first + args.connections)],
            args.token,
            lambda uid: None,
        )
        payload = base64.b64encode(b"x" * 100).decode()
        stop_at = time.monotonic() + args.duration
        began = time.monotonic()

        async def loop(conn: Conn, peer: str) -> None:
            while time.monotonic() < stop_at:
                t0 = time.monotonic()
                await conn.send(peer, 1, payload)
                latencies.append(time.monotonic() - t0)

        await asyncio.gather(
            *(loop(c, f"r{args.first + i}") for i, c in enumerate(conns))
        )
        elapsed = time.monotonic() - began
        await close_all(conns)
    return {
        "sent": len(latencies),
        "seconds": elapsed,
        "rate": len(latencies) / elapsed,
        **summary(latencies),
    }


async def paced(
    rate: float, duration: float, senders: int, send: Callable[[int], Awaitable[object]]
) -> int:
    """Open loop: ``rate`` sends/s spread over ``senders`` tasks for ``duration``."""
    per_sender = rate / senders
    sent = 0

    async def sender(index: int) -> None:
        nonlocal sent
        start = time.monotonic() + index / rate
        for k in itertools.count():
            due = start + k / per_sender
            if due - start > duration:
                return
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await send(index)
            sent += 1

    await asyncio.gather(*(sender(i) for i in range(senders)))
    return sent


async def mode_e2e(args: argparse.Namespace) -> dict[str, Any]:
    latencies: list[float] = []

    def on_recv(params: dict[str, Any]) -> None:
        latencies.append(time.monotonic() - payload_time(params["payload"]))

    pairs = args.connections
    async with _session() as session:
        receivers = await open_many(
            session,
            args.url,
            [f"r{i}" for i in range(pairs)],
            args.token,
            lambda uid: on_recv,
        )
        senders = await open_many(
            session,
            args.url,
            [f"s{i}" for i in range(pairs)],
            args.token,
            lambda uid: None,
        )

        async def send(i: int) -> None:
            await senders[i].send(f"r{i}", 1, stamp_payload())

        sent = await paced(args.rate, args.duration, pairs, send)
        await asyncio.sleep(1.0)  # let the last deliveries arrive
        await close_all(receivers + senders)
    return {"sent": sent, "received": len(latencies), **summary(latencies)}


async def mode_fanout_receive(args: argparse.Namespace) -> dict[str, Any]:
    """Hold members ``<prefix><first>..`` online; bucket send->recv latencies by the
    step index the sender put in the payload; stop when stdin closes."""
    steps: dict[int, list[int]] = {}

    def on_recv(params: dict[str, Any]) -> None:
        now = time.monotonic()
        stamp = _decode(base64.b64decode(params["payload"]))
        steps.setdefault(int(stamp["s"]), []).append(int((now - stamp["t"]) * 1e6))

    uids = [f"m{i}" for i in range(args.first, args.first + args.connections)]
    async with _session() as session:
        conns = await open_many(
            session, args.url, uids, args.token, lambda uid: on_recv
        )
        sys.stdout.write("READY\n")
        sys.stdout.flush()
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await close_all(conns)
    # Hundreds of thousands of values: a file, not a pipe line.
    text = json.dumps({str(k): v for k, v in steps.items()})
    await asyncio.to_thread(Path(args.out).write_text, text)
    return {"steps": len(steps)}


async def mode_fanout_send(args: argparse.Namespace) -> dict[str, Any]:
    """One member sends into the group at each rate of ``--rates`` in turn."""
    steps: list[dict[str, float]] = []
    async with _session() as session:
        (sender,) = await open_many(
            session, args.url, ["fan-sender"], args.token, lambda uid: None
        )
        rates = [float(r) for r in args.rates.split(",")]
        if args.warmup > 0:
            # Not measured (step -1): the previous run's clients are still being
            # torn down and caches are cold; the first step should not pay that.
            async def warm(_: int) -> None:
                stamp = {"t": time.monotonic(), "s": WARMUP_STEP}
                payload = base64.b64encode(_encode(stamp)).decode()
                await sender.send(args.channel, 2, payload)

            await paced(rates[0], args.warmup, 1, warm)
            await asyncio.sleep(1.0)
        for index, rate in enumerate(rates):

            async def send(_: int, index: int = index) -> None:
                stamp = {"t": time.monotonic(), "s": index}
                payload = base64.b64encode(_encode(stamp)).decode()
                await sender.send(args.channel, 2, payload)

            began = time.monotonic()
            sent = await paced(rate, args.duration, 1, send)
            elapsed = time.monotonic() - began
            steps.append({"rate": rate, "sent": sent, "seconds": elapsed})
            await asyncio.sleep(1.0)  # drain before the next rate
            if elapsed > 1.5 * args.duration:
                break  # sends themselves lag: the server is saturated
        await close_all([sender])
    return {"steps": steps}


async def mode_idle(args: argparse.Namespace) -> dict[str, Any]:
    async with _session() as session:
        conns = await open_many(
            session,
            args.url,
            [f"i{i}" for i in range(args.connections)],
            args.token,
            lambda uid: None,
        )
        sys.stdout.write("READY\n")
        sys.stdout.flush()
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        alive = sum(1 for c in conns if not c.ws.closed)
        await close_all(conns)
    return {"opened": len(conns), "alive_at_end": alive}


MODES = {
    "send": mode_send,
    "e2e": mode_e2e,
    "fanout-receive": mode_fanout_receive,
    "fanout-send": mode_fanout_send,
    "idle": mode_idle,
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.wsload")
    parser.add_argument("mode", choices=sorted(MODES))
    parser.add_argument("url")
    parser.add_argument("--token", required=True)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--rates", default="10,20,50,100,200,400")
    parser.add_argument("--channel", default="fan")
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--warmup", type=float, default=0.0, help="fanout-send: s")
    parser.add_argument("--out", default="", help="fanout-receive: latencies file")
    args = parser.parse_args()
    result = run(MODES[args.mode](args))
    sys.stdout.write("JSON " + json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
