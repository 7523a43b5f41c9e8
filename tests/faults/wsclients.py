"""WebSocket clients for fault tests, speaking only the public protocol
(docs/gateway.md): each records the seqs it received live, catches up by offset
(``channel.messagesync``) when told to resync, and hands its view to the checker.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import defaultdict
from typing import Any

import aiohttp
import anyio
from aiohttp import WSMsgType

from broker.channels import ChannelType
from tests.faults.ledger import Channel, storage_channel

RESYNC = "jindou.resync"
# A sync reply is one frame: it must fit the connection's outbox next to live
# messages (JINDOU_WS_QUEUE_BYTES), or the gateway closes the client with 4001.
SYNC_PAGE = 100


async def register_token(
    session: aiohttp.ClientSession, api_url: str, manager: str, uid: str
) -> str:
    token = f"tok-{uid}"
    async with session.post(
        f"{api_url}/user/token",
        json={"uid": uid, "token": token, "device_flag": 2, "device_level": 0},
        headers={"token": manager},
    ) as resp:
        assert resp.status == 200, await resp.text()
    return token


def high_water(seqs: set[int], start: int = 0) -> int:
    """The last seq of the run ``start+1, start+2, ...`` held without a hole."""
    n = start
    while n + 1 in seqs:
        n += 1
    return n


class WsUser:
    """One connection of ``uid``; ``channels`` as the client names them
    ((channel_type, id): a person channel names the peer)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        ws_url: str,
        uid: str,
        token: str,
        channels: list[tuple[int, str]],
        *,
        sync_page: int = SYNC_PAGE,
    ) -> None:
        self.sync_page = sync_page
        self.session = session
        self.ws_url = ws_url
        self.uid = uid
        self.token = token
        self.channels = channels
        self.live: dict[Channel, set[int]] = defaultdict(set)
        self.synced: dict[Channel, set[int]] = defaultdict(set)
        self.earlier: dict[Channel, set[int]] = defaultdict(set)  # a past session's
        self.arrivals: dict[tuple[Channel, int], float] = {}  # first live arrival
        self.resyncs = 0
        self.catchups = 0
        self.close_code: int | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._resync = anyio.Event()

    # -- what the checker reads ---------------------------------------------------
    def seqs(self) -> dict[Channel, set[int]]:
        out: dict[Channel, set[int]] = defaultdict(set)
        for source in (self.earlier, self.live, self.synced):
            for channel, seqs in source.items():
                out[channel] |= seqs
        return out

    def storage(self, channel_type: int, channel_id: str) -> Channel:
        return storage_channel(channel_type, channel_id, self.uid)

    # -- protocol ----------------------------------------------------------------
    async def connect(self) -> WsUser:
        self._ws = await self.session.ws_connect(self.ws_url, max_msg_size=0)
        await self._ws.send_str(
            json.dumps(
                {
                    "id": "login",
                    "method": "connect",
                    "params": {"uid": self.uid, "token": self.token, "deviceFlag": 2},
                }
            )
        )
        reply = await self._ws.receive_json(timeout=10)
        assert reply.get("result", {}).get("reasonCode") == 1, reply
        return self

    async def call(self, method: str, params: object, timeout: float = 10.0) -> Any:
        assert self._ws is not None
        rid = f"q{next(self._ids)}"
        future: asyncio.Future[dict[str, Any]] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiting[rid] = future
        await self._ws.send_str(
            json.dumps({"id": rid, "method": method, "params": params})
        )
        with anyio.fail_after(timeout):
            reply = await future
        if "error" in reply:
            raise RuntimeError(f"{method} failed: {reply['error']}")
        return reply["result"]

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Read until the socket closes; catch up by offset after each resync hint."""
        assert self._ws is not None
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._catch_up_loop)
            task_status.started()
            async for msg in self._ws:
                if msg.type is not WSMsgType.TEXT:
                    break
                await self._on_frame(json.loads(msg.data))
            self.close_code = self._ws.close_code
            tg.cancel_scope.cancel()

    async def _on_frame(self, frame: dict[str, Any]) -> None:
        assert self._ws is not None
        if "id" in frame and "method" not in frame:
            future = self._waiting.pop(str(frame["id"]), None)
            if future is not None and not future.done():
                future.set_result(frame)
            return
        method, params = frame.get("method"), frame.get("params") or {}
        if method == "recv":
            seq = params["messageSeq"]
            if not seq:
                return  # not persisted: nothing to check by offset
            channel = self.storage(params["channelType"], params["channelId"])
            if seq not in self.live[channel]:
                self.live[channel].add(seq)
                self.arrivals[(channel, seq)] = time.time()
            ack = {"messageId": params["messageId"], "messageSeq": seq}
            await self._ws.send_str(json.dumps({"method": "recvack", "params": ack}))
        elif method == "event" and params.get("type") == RESYNC:
            self.resyncs += 1
            self._resync.set()

    async def _catch_up_loop(self) -> None:
        while True:
            await self._resync.wait()
            self._resync = anyio.Event()
            await self.catch_up()

    async def catch_up(self) -> None:
        """Fetch every channel from the first seq not held, as a client would."""
        self.catchups += 1
        for channel_type, channel_id in self.channels:
            channel = self.storage(channel_type, channel_id)
            start = high_water(self.seqs()[channel]) + 1
            while True:
                result = await self.call(
                    "channel.messagesync",
                    {
                        "channel_id": channel_id,
                        "channel_type": channel_type,
                        "start_message_seq": start,
                        "end_message_seq": 0,
                        "limit": self.sync_page,
                        "pull_mode": 1,
                    },
                )
                got = [m["message_seq"] for m in result["messages"]]
                self.synced[channel].update(got)
                if not result.get("more") or not got:
                    break
                start = max(got) + 1

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()


def user_channels(
    specs: list[tuple[int, str, tuple[str, ...]]], uid: str
) -> list[tuple[int, str]]:
    """The channels ``uid`` is in, named as ``uid``'s client names them."""
    out = []
    for channel_type, channel_id, members in specs:
        if uid not in members:
            continue
        if channel_type == ChannelType.PERSON:
            out += [(channel_type, peer) for peer in members if peer != uid]
        else:
            out.append((channel_type, channel_id))
    return out


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, payload) of each complete unmasked frame a server sent; a cut last
    frame is left out."""
    frames = []
    pos = 0
    while pos + 2 <= len(data):
        opcode, size = data[pos] & 0x0F, data[pos + 1] & 0x7F
        pos += 2
        if size == 126:
            size, pos = int.from_bytes(data[pos : pos + 2], "big"), pos + 2
        elif size == 127:
            size, pos = int.from_bytes(data[pos : pos + 8], "big"), pos + 8
        if pos + size > len(data):
            break
        frames.append((opcode, data[pos : pos + size]))
        pos += size
    return frames


def recv_seqs_and_close(data: bytes, uid: str) -> tuple[dict[Channel, set[int]], int]:
    """What a raw (stalled) client received: seqs by channel, and the close code
    (0 if no close frame arrived)."""
    seqs: dict[Channel, set[int]] = defaultdict(set)
    code = 0
    for opcode, payload in server_frames(data):
        if opcode == 0x8 and len(payload) >= 2:
            code = int.from_bytes(payload[:2], "big")
        elif opcode == 0x1:
            frame = json.loads(payload)
            if frame.get("method") == "recv" and frame["params"]["messageSeq"]:
                params = frame["params"]
                channel = storage_channel(
                    params["channelType"], params["channelId"], uid
                )
                seqs[channel].add(params["messageSeq"])
    return seqs, code
