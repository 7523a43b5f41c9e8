"""A population of WebSocket clients for the soak (R19): N authenticated
connections that read and ack every `recv`, with churn (a share of them closed and
reopened every minute) and reconnection with back-off when the api goes away.

Counts what happened; the soak's pass criteria are about the server's resources,
the ledger and the PEL, not about each client (R7/R16 check per-client catch-up).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
import anyio
import msgspec

from broker.keys import Keys
from broker.users import store_token

DEVICE_FLAGS = (0, 1, 2)  # app, web, pc: one connection of each per uid is allowed
_encode = msgspec.json.encode
_decode = msgspec.json.decode


@dataclass
class WsCounters:
    connects: int = 0
    reconnects: int = 0
    churned: int = 0
    recv: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    open_now: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "connects": self.connects,
            "reconnects": self.reconnects,
            "churned": self.churned,
            "recv": self.recv,
            "refused": dict(self.refused),
            "open_now": self.open_now,
        }


def identities(members: list[str], total: int) -> list[tuple[str, int]]:
    """(uid, device_flag) for `total` clients: every member once (they receive the
    load's messages, on one device, as most users are), then idle observers."""
    ids = [(uid, DEVICE_FLAGS[n % 3]) for n, uid in enumerate(members)][:total]
    observers = 0
    while len(ids) < total:
        ids.append((f"obs{observers}", DEVICE_FLAGS[observers % len(DEVICE_FLAGS)]))
        observers += 1
    return ids


class WsPopulation:
    """Keeps `len(ids)` clients connected until `stop` is set."""

    def __init__(
        self,
        ws_url: str,
        redis: object,
        keys: Keys,
        ids: list[tuple[str, int]],
        churn_per_minute: float,
        seed: int = 19,
    ) -> None:
        self.ws_url = ws_url
        self.redis = redis
        self.keys = keys
        self.ids = ids
        self.churn_per_minute = churn_per_minute
        self.rng = random.Random(seed)
        self.counters = WsCounters()
        self.stop = anyio.Event()
        self._kick: list[anyio.Event] = [anyio.Event() for _ in ids]

    async def run(self) -> None:
        for uid, flag in self.ids:
            await store_token(
                self.redis,  # type: ignore[arg-type]
                self.keys,
                uid,
                flag,
                f"soak-{uid}-{flag}",
                0,
            )
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=5)
        connector = aiohttp.TCPConnector(limit=0)
        async with (
            aiohttp.ClientSession(timeout=timeout, connector=connector) as session,
            anyio.create_task_group() as tg,
        ):
            for index in range(len(self.ids)):
                tg.start_soon(self._client, session, index)
                if index % 50 == 49:  # clients trickle in, as after a deploy
                    await anyio.sleep(0.05)
            tg.start_soon(self._churn)
            await self.stop.wait()
            tg.cancel_scope.cancel()

    async def _churn(self) -> None:
        while not self.stop.is_set():
            with anyio.move_on_after(60):
                await self.stop.wait()
            if self.stop.is_set():
                return
            count = max(1, round(len(self.ids) * self.churn_per_minute))
            for index in self.rng.sample(range(len(self.ids)), count):
                self._kick[index].set()
            self.counters.churned += count

    async def _client(self, session: aiohttp.ClientSession, index: int) -> None:
        uid, flag = self.ids[index]
        first = True
        backoff = 0.2
        while not self.stop.is_set():
            if not first:
                self.counters.reconnects += 1
                await anyio.sleep(backoff * (0.5 + self.rng.random()))
                backoff = min(backoff * 2, 5.0)
            first = False
            try:
                async with session.ws_connect(self.ws_url, heartbeat=None) as ws:
                    if not await self._login(ws, uid, flag):
                        continue
                    backoff = 0.2
                    self.counters.connects += 1
                    self.counters.open_now += 1
                    try:
                        await self._read(ws, index)
                    finally:
                        self.counters.open_now -= 1
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                self.counters.refused[type(exc).__name__] += 1

    async def _login(
        self, ws: aiohttp.ClientWebSocketResponse, uid: str, flag: int
    ) -> bool:
        params = {
            "uid": uid,
            "token": f"soak-{uid}-{flag}",
            "deviceFlag": flag,
            "deviceId": f"soak-{uid}-{flag}",
            "clientTimestamp": 1,
        }
        await ws.send_str(
            _encode({"method": "connect", "id": "c", "params": params}).decode()
        )
        with anyio.move_on_after(10):
            msg = await ws.receive()
            if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                reply = _decode(msg.data)
                result = reply.get("result") or {}
                if result.get("reasonCode") == 1:
                    return True
                self.counters.refused[f"connect:{reply}"[:80]] += 1
        return False

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, index: int) -> None:
        kick = self._kick[index]
        async with anyio.create_task_group() as tg:

            async def on_kick() -> None:
                await kick.wait()
                self._kick[index] = anyio.Event()
                await ws.close()

            tg.start_soon(on_kick)
            async for msg in ws:
                if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    break
                frame = _decode(msg.data)
                if frame.get("method") == "recv":
                    self.counters.recv += 1
                    params = frame["params"]
                    ack = {
                        "method": "recvack",
                        "params": {
                            "header": params.get("header", {}),
                            "messageId": params["messageId"],
                            "messageSeq": params["messageSeq"],
                        },
                    }
                    await ws.send_str(_encode(ack).decode())
            tg.cancel_scope.cancel()
