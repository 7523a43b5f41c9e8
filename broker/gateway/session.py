"""One WebSocket connection: authentication, requests, its outbox and writer.

Everything the server writes to a client goes through the connection's bounded
outbox and its single writer task, so responses and ``recv`` frames keep their
order and a slow client only ever blocks its own writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import anyio
import msgspec
from aiohttp import WSMsgType, web
from redis.exceptions import RedisError

from broker.channels import ChannelType, InvalidId, check_id
from broker.errors import Reason
from broker.gateway import frames
from broker.gateway.control import Kick, publish_kick
from broker.gateway.hub import Hub
from broker.gateway.limits import Outbox, OutboxFull, TokenBucket
from broker.gateway.methods import Methods
from broker.gateway.presence import ConnRecord, Presence
from broker.gateway.status_events import enqueue_status
from broker.metrics import CONNECTIONS, DELIVERY_DROPS, REDIS_ERRORS
from broker.services import Services
from broker.settings import Settings
from broker.users import check_token

log = logging.getLogger(__name__)

MASTER = 1


class CloseCode:
    """WebSocket close codes the gateway uses (docs/gateway.md)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    UNSUPPORTED_DATA = 1003
    POLICY = 1008  # a request before `connect`
    UNAVAILABLE = 1011  # Redis is unreachable
    TOO_BIG = 1009  # sent by aiohttp for frames over JINDOU_WS_MAX_FRAME
    SLOW_CONSUMER = 4001
    AUTH_TIMEOUT = 4002
    AUTH_FAILED = 4003
    KICKED = 4012


@dataclass
class GatewayContext:
    services: Services
    settings: Settings
    hub: Hub
    presence: Presence
    node_number: Callable[[], int]
    status_events: bool = False  # queue user.onlinestatus webhook events


@dataclass
class PendingRecv:
    frame: bytes
    attempts: int
    due: float


DROPPED_SLOW = DELIVERY_DROPS.labels("slow_consumer")
DROPPED_CLOSED = DELIVERY_DROPS.labels("closed")

_CLOSE_AFTER = b""  # outbox sentinel: close once everything before it is written


def new_conn_id() -> str:
    return secrets.token_hex(8)


class Session:
    def __init__(
        self,
        ws: web.WebSocketResponse,
        ctx: GatewayContext,
        transport: asyncio.BaseTransport | None,
    ) -> None:
        self.ws = ws
        self.transport = transport
        self.ctx = ctx
        settings = ctx.settings
        self.conn_id = new_conn_id()
        self.uid = ""
        self.device_flag = 0
        self.device_level = 0
        self.device_id = ""
        self.outbox = Outbox(settings.ws_queue_messages, settings.ws_queue_bytes)
        self.send_bucket = TokenBucket(settings.ws_send_rate, settings.ws_send_burst)
        self.request_bucket = TokenBucket(
            settings.ws_request_rate, settings.ws_request_burst
        )
        self.pending: dict[str, PendingRecv] = {}
        self._tracking = anyio.Event()
        self.close_code = CloseCode.NORMAL
        self.close_reason = ""
        self.closing = False
        self._scope: anyio.CancelScope | None = None
        self._close_after_code = CloseCode.KICKED
        self.methods = Methods(self)

    # -- what fan-out calls (never awaits) --------------------------------------------
    def push(self, frame: bytes) -> None:
        if self.closing:
            DROPPED_CLOSED.inc()
            return
        try:
            self.outbox.put(frame)
        except OutboxFull as exc:
            DROPPED_SLOW.inc()
            log.info("closing slow consumer %s (%s): %s", self.conn_id, self.uid, exc)
            self.finish(CloseCode.SLOW_CONSUMER, "slow consumer")

    def push_recv(self, message_id: str, frame: bytes, *, persisted: bool) -> None:
        self.push(frame)
        if persisted and not self.closing:
            self._track(message_id, frame)

    def kick(self, notice: bytes) -> None:
        self.push(notice)
        if not self.closing:
            self._close_after_code = CloseCode.KICKED
            self.outbox.put_marker(_CLOSE_AFTER)

    def finish(self, code: int, reason: str = "") -> None:
        """End the session with this close code (the first reason wins)."""
        if self.closing:
            return
        self.closing = True
        self.close_code = code
        self.close_reason = reason
        if self._scope is not None:
            self._scope.cancel()

    # -- unacknowledged persisted messages ---------------------------------------------
    def _track(self, message_id: str, frame: bytes) -> None:
        if len(self.pending) >= self.ctx.settings.ws_queue_messages:
            # Stop retrying the oldest; the client can still sync it by offset.
            self.pending.pop(next(iter(self.pending)))
        retry = self.ctx.settings.ws_retry_ms / 1000
        self.pending[message_id] = PendingRecv(frame, 0, time.monotonic() + retry)
        self._tracking.set()

    def acked(self, message_id: str) -> None:
        self.pending.pop(message_id, None)

    async def _retry_loop(self) -> None:
        base = self.ctx.settings.ws_retry_ms / 1000
        limit = self.ctx.settings.ws_retry_max
        while True:
            if not self.pending:  # idle connections cost no timer wake-ups
                self._tracking = anyio.Event()
                await self._tracking.wait()
            await anyio.sleep(min(base / 4, 1.0))
            now = time.monotonic()
            for message_id, entry in list(self.pending.items()):
                if entry.due > now:
                    continue
                entry.attempts += 1
                entry.due = now + base * 2**entry.attempts
                if entry.attempts >= limit:
                    del self.pending[message_id]  # last try; then sync by offset
                self.push(entry.frame)

    # -- the connection's life ---------------------------------------------------------
    async def serve(self) -> None:
        if not await self._authenticate():
            return
        ctx = self.ctx
        record = ConnRecord(
            self.conn_id, ctx.services.node_id, self.device_flag, self.device_level
        )
        ctx.hub.add(self)
        try:
            try:
                await ctx.presence.register(self.uid, record)
                await self._kick_others()
            except RedisError:
                REDIS_ERRORS.labels("gateway").inc()
                log.warning("redis unavailable; closing connection %s", self.conn_id)
                self.finish(CloseCode.UNAVAILABLE, "storage unavailable")
                return
            connections = CONNECTIONS.labels(str(self.device_flag))
            connections.inc()
            await self._status_event(online=True)
            try:
                await self._run()
            finally:
                connections.dec()
        finally:
            ctx.hub.remove(self)
            with anyio.CancelScope(shield=True):
                try:
                    await ctx.presence.unregister(self.uid, self.conn_id)
                except RedisError:
                    REDIS_ERRORS.labels("gateway").inc()
                    log.warning("could not unregister connection %s", self.conn_id)
                else:
                    await self._status_event(online=False)
                await self._close()

    async def _status_event(self, *, online: bool) -> None:
        if not self.ctx.status_events:
            return
        try:
            await enqueue_status(
                self.ctx.presence,
                self.uid,
                self.device_flag,
                self.conn_id,
                online=online,
            )
        except RedisError:
            REDIS_ERRORS.labels("gateway").inc()
            log.warning("could not queue user.onlinestatus for %s", self.conn_id)

    async def _run(self) -> None:
        """Writer, re-sender and reader until one of them ends the session."""
        with anyio.CancelScope() as scope:
            self._scope = scope
            if self.closing:
                scope.cancel()
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._write_loop)
                tg.start_soon(self._retry_loop)
                await self._read_loop()
                self.finish(CloseCode.NORMAL)

    async def _kick_others(self) -> None:
        """A master login replaces the uid's other devices of the same flag; any
        login replaces an older connection of the same device id (reference §7)."""
        kick = Kick(
            uid=self.uid,
            device_flag=self.device_flag,
            device_id="" if self.device_level == MASTER else self.device_id,
            except_conn=self.conn_id,
        )
        if kick.device_id or self.device_level == MASTER:
            await publish_kick(self.ctx.services.redis, self.ctx.services.keys, kick)

    async def _close(self) -> None:
        if self.ws.closed:
            return
        code, reason = self.close_code, self.close_reason.encode()
        if code == CloseCode.SLOW_CONSUMER:
            # The client does not read: a polite close would wait on it forever.
            with anyio.move_on_after(0.05):
                await self.ws.close(code=code, message=reason, drain=False)
            if isinstance(self.transport, asyncio.WriteTransport):
                self.transport.abort()
            return
        with anyio.move_on_after(2.0):
            await self.ws.close(code=code, message=reason)

    async def _write_loop(self) -> None:
        try:
            while True:
                frame = await self.outbox.get()
                if frame is _CLOSE_AFTER or not frame:
                    self.finish(self._close_after_code, "kicked")
                    return
                await self.ws.send_frame(frame, WSMsgType.TEXT)
        except (ConnectionError, RuntimeError):
            self.finish(CloseCode.GOING_AWAY)

    async def _read_loop(self) -> None:
        while True:
            msg = await self.ws.receive()
            if msg.type is WSMsgType.TEXT:
                await self.methods.handle(msg.data.encode())
            elif msg.type is WSMsgType.BINARY:
                if not _looks_like_json(msg.data):
                    self.finish(
                        CloseCode.UNSUPPORTED_DATA, "binary frames not supported"
                    )
                    return
                await self.methods.handle(bytes(msg.data))
            else:  # close, closing, closed or error (aiohttp sent 1009/1002/1007)
                return
            if self.closing:
                return

    # -- authentication ------------------------------------------------------------
    async def _authenticate(self) -> bool:
        with anyio.move_on_after(self.ctx.settings.ws_auth_timeout):
            return await self._connect_frame()
        self.close_code, self.close_reason = CloseCode.AUTH_TIMEOUT, "auth timeout"
        await self._close()
        return False

    async def _refuse(self, frame: bytes, code: int, reason: str) -> bool:
        with contextlib.suppress(ConnectionError):  # the client may be gone already
            await self.ws.send_frame(frame, WSMsgType.TEXT)
        self.close_code, self.close_reason = code, reason
        await self._close()
        return False

    async def _connect_frame(self) -> bool:
        msg = await self.ws.receive()
        if msg.type is WSMsgType.TEXT:
            raw = msg.data.encode()
        elif msg.type is WSMsgType.BINARY and _looks_like_json(msg.data):
            raw = bytes(msg.data)
        elif msg.type is WSMsgType.BINARY:
            self.close_code = CloseCode.UNSUPPORTED_DATA
            await self._close()
            return False
        else:
            return False
        try:
            envelope = frames.decode_envelope(raw)
        except msgspec.DecodeError as exc:
            return await self._refuse(
                frames.error(None, frames.PARSE_ERROR, f"invalid frame: {exc}"),
                CloseCode.POLICY,
                "invalid frame",
            )
        if envelope.method != "connect" or envelope.id is None:
            return await self._refuse(
                frames.error(
                    envelope.id,
                    frames.NOT_AUTHENTICATED,
                    "the first request must be connect",
                ),
                CloseCode.POLICY,
                "not authenticated",
            )
        try:
            params = frames.decode_connect(frames.params_bytes(envelope))
            check_id(params.uid, "uid")
        except (msgspec.DecodeError, InvalidId):
            params = None
        level = None
        if params is not None:
            try:
                level = await check_token(
                    self.ctx.services.redis,
                    self.ctx.services.keys,
                    params.uid,
                    params.deviceFlag,
                    params.token,
                )
            except RedisError:
                log.warning("token check failed: redis unavailable")
                return await self._refuse(
                    frames.error(envelope.id, Reason.SYSTEM_ERROR, "ReasonSystemError"),
                    CloseCode.UNAVAILABLE,
                    "unavailable",
                )
        if params is None or level is None:
            return await self._refuse(
                frames.error(envelope.id, Reason.AUTH_FAIL, "ReasonAuthFail"),
                CloseCode.AUTH_FAILED,
                "auth failed",
            )
        if await self._banned(params.uid):
            return await self._refuse(
                frames.error(envelope.id, Reason.BAN, "ReasonBan"),
                CloseCode.AUTH_FAILED,
                "banned",
            )
        self.uid = params.uid
        self.device_flag = params.deviceFlag
        self.device_level = level
        self.device_id = params.deviceId
        now = int(time.time() * 1000)
        # Written first by the writer, so no recv can precede the connect result.
        self.outbox.put(
            frames.result(
                envelope.id,
                frames.ConnectResult(
                    timeDiff=now - params.clientTimestamp
                    if params.clientTimestamp
                    else 0,
                    nodeId=max(self.ctx.node_number(), 0),
                ),
            )
        )
        return True

    async def _banned(self, uid: str) -> bool:
        """A user whose person channel is banned may not connect (reference §7)."""
        svc = self.ctx.services
        person = svc.keys.channel(ChannelType.PERSON, uid)
        try:
            return bool(await svc.redis.hget(person.meta, "ban") == b"1")
        except RedisError:
            return False  # the token check just worked; do not refuse on a blip


def _looks_like_json(data: bytes) -> bool:
    return bytes(data).lstrip()[:1] == b"{"
