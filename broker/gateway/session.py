"""One WebSocket connection: authentication, requests and what it is sent.

A connection owns no task of its own: the aiohttp handler task reads and answers
requests, and frames (responses, ``recv``) are written straight to the socket in
the order they are made. Only when the socket is backed up (the client reads
slower than it is sent to) do frames wait in the connection's bounded outbox,
emptied by a short-lived task; a full outbox closes that client only.
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
from aiohttp.base_protocol import BaseProtocol
from redis.exceptions import RedisError

from broker.channels import InvalidId, check_id
from broker.errors import Reason
from broker.gateway import frames, wire
from broker.gateway.control import LOG_END, Kick, publish_kick
from broker.gateway.hub import Hub
from broker.gateway.kick_replay import KickReplay
from broker.gateway.limits import Outbox, OutboxFull, TokenBucket
from broker.gateway.methods import Methods
from broker.gateway.presence import ConnRecord, Presence
from broker.gateway.resend import Resender
from broker.gateway.status_events import enqueue_status
from broker.metrics import CONNECTIONS, DELIVERY_DROPS, REDIS_ERRORS
from broker.services import Services
from broker.settings import Settings
from broker.users import check_token, user_banned

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
    resender: Resender
    methods: Methods
    kick_replay: KickReplay
    status_events: bool = False  # queue user.onlinestatus webhook events


class PendingRecv:
    """A persisted ``recv`` frame the client has not acknowledged yet."""

    __slots__ = ("attempts", "due", "frame")

    def __init__(self, frame: bytes, due: float) -> None:
        self.frame = frame
        self.attempts = 0
        self.due = due


DROPPED_SLOW = DELIVERY_DROPS.labels("slow_consumer")
DROPPED_CLOSED = DELIVERY_DROPS.labels("closed")

_CLOSE_AFTER = b""  # outbox sentinel: close once everything before it is written
# Tasks that close sessions, referenced until done (the loop keeps weak references).
_closing_tasks: set[asyncio.Task[None]] = set()


def new_conn_id() -> str:
    return secrets.token_hex(8)


class Session:
    """One connection. It owns no task: the aiohttp handler task reads, frames are
    written straight to the transport, and only a backed-up socket gets an outbox
    and a short-lived task that empties it (design-notes "Gateway per-connection
    cost")."""

    __slots__ = (
        "_closer",
        "_drainer",
        "_held",
        "_receiving",
        "close_code",
        "close_reason",
        "closing",
        "conn_id",
        "ctx",
        "device_flag",
        "device_id",
        "device_level",
        "kicks_seen",
        "outbox",
        "pending",
        "protocol",
        "request_bucket",
        "send_bucket",
        "transport",
        "uid",
        "ws",
    )

    def __init__(
        self,
        ws: web.WebSocketResponse,
        ctx: GatewayContext,
        transport: asyncio.Transport | None,
        protocol: BaseProtocol | None = None,
    ) -> None:
        self.ws = ws
        self.transport = transport
        self.protocol = protocol
        self.ctx = ctx
        self.conn_id = new_conn_id()
        self.uid = ""
        self.device_flag = 0
        self.device_level = 0
        self.device_id = ""
        # The kick log's position when it registered (gateway/control.py); until
        # then no replayed kick applies to it.
        self.kicks_seen = LOG_END
        self.outbox: Outbox | None = None  # only while the socket is backed up
        # Made on first use: an idle connection carries none.
        self.send_bucket: TokenBucket | None = None
        self.request_bucket: TokenBucket | None = None
        self.pending: dict[str, PendingRecv] = {}
        self.close_code = CloseCode.NORMAL
        self.close_reason = ""
        self.closing = False
        self._receiving = False
        self._drainer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        # Frames for the client while it joins: written after its connect result.
        self._held: list[bytes] | None = None

    def may_request(self) -> bool:
        """Take a token of the connection's request rate (any method)."""
        bucket = self.request_bucket
        if bucket is None:
            settings = self.ctx.settings
            bucket = self.request_bucket = TokenBucket(
                settings.ws_request_rate, settings.ws_request_burst
            )
        return bucket.take()

    def may_send(self) -> bool:
        """Take a token of the connection's ``send`` rate."""
        bucket = self.send_bucket
        if bucket is None:
            settings = self.ctx.settings
            bucket = self.send_bucket = TokenBucket(
                settings.ws_send_rate, settings.ws_send_burst
            )
        return bucket.take()

    # -- what fan-out and replies call (never awaits) -----------------------------
    def reply(self, frame: bytes) -> None:
        """Write one JSON frame (a response or notification) to the client."""
        self.push(wire.text_frame(frame))

    def push(self, frame: bytes) -> None:
        """Write one ready WebSocket frame (``wire.text_frame``)."""
        if self.closing:
            DROPPED_CLOSED.inc()
            return
        if self._held is not None:
            self._held.append(frame)
            return
        outbox = self.outbox
        transport = self.transport
        if (
            (outbox is None or not outbox.frames)
            and transport is not None
            and not (self.protocol is not None and self.protocol.writing_paused)
        ):
            if transport.is_closing():
                DROPPED_CLOSED.inc()
                return
            transport.write(frame)
            return
        if outbox is None:
            settings = self.ctx.settings
            outbox = self.outbox = Outbox(
                settings.ws_queue_messages, settings.ws_queue_bytes
            )
        try:
            outbox.put(frame)
        except OutboxFull as exc:
            DROPPED_SLOW.inc()
            log.info("closing slow consumer %s (%s): %s", self.conn_id, self.uid, exc)
            self.finish(CloseCode.SLOW_CONSUMER, "slow consumer")
            return
        if self._drainer is None:
            self._drainer = asyncio.get_running_loop().create_task(self._drain())

    def push_recv(self, message_id: str, frame: bytes, *, persisted: bool) -> None:
        self.push(frame)
        if persisted and not self.closing:
            self._track(message_id, frame)

    def kick(self, notice: bytes) -> None:
        self.push(notice)
        if self.closing:
            return
        if self.outbox is not None and self.outbox.frames:
            self.outbox.put_marker(_CLOSE_AFTER)  # the drainer closes after it
        else:
            self.finish(CloseCode.KICKED, "kicked")

    def finish(self, code: int, reason: str = "") -> None:
        """End the session with this close code (the first reason wins)."""
        if self.closing:
            return
        self.closing = True
        self.close_code = code
        self.close_reason = reason
        if self._receiving:
            # The reader waits on the socket: closing it wakes the reader up.
            self._closer = task = asyncio.get_running_loop().create_task(self._close())
            _closing_tasks.add(task)
            task.add_done_callback(_closing_tasks.discard)

    async def _drain(self) -> None:
        """Empty the outbox of a backed-up socket as the client reads it."""
        protocol, transport, outbox = self.protocol, self.transport, self.outbox
        assert protocol is not None
        assert transport is not None
        assert outbox is not None
        try:
            while outbox.frames and not self.closing:
                if protocol.writing_paused:
                    # aiohttp's own writer waits on this (BaseProtocol flow control).
                    await protocol._drain_helper()
                    continue
                frame = outbox.pop()
                if frame is _CLOSE_AFTER:
                    self.finish(CloseCode.KICKED, "kicked")
                    return
                if transport.is_closing():
                    raise ConnectionResetError("transport closing")
                transport.write(frame)
        except (ConnectionError, RuntimeError):
            self.finish(CloseCode.GOING_AWAY)
        finally:
            self._drainer = None

    # -- unacknowledged persisted messages ---------------------------------------------
    def _track(self, message_id: str, frame: bytes) -> None:
        settings = self.ctx.settings
        pending = self.pending
        if len(pending) >= settings.ws_queue_messages:
            # Stop retrying the oldest; the client can still sync it by offset.
            pending.pop(next(iter(pending)))
        if not pending:
            self.ctx.resender.watch(self)
        pending[message_id] = PendingRecv(
            frame, time.monotonic() + settings.ws_retry_ms / 1000
        )

    def acked(self, message_id: str) -> None:
        self.pending.pop(message_id, None)

    def resend_due(self, now: float) -> bool:
        """Called by the node's Resender; False once nothing is left to re-send."""
        if self.closing:
            self.pending.clear()
            return False
        settings = self.ctx.settings
        base = settings.ws_retry_ms / 1000
        due = [(mid, p) for mid, p in self.pending.items() if p.due <= now]
        for message_id, entry in due:
            entry.attempts += 1
            entry.due = now + base * 2**entry.attempts
            if entry.attempts >= settings.ws_retry_max:
                del self.pending[message_id]  # last try; then sync by offset
            self.push(entry.frame)
        return bool(self.pending)

    # -- the connection's life ---------------------------------------------------------
    async def serve(self) -> None:
        """Authenticate, join, then read and answer requests until the end. The
        loop runs in this frame: an idle connection holds as few frames as can be."""
        if not await self._join():
            return
        ws = self.ws
        handle = self.ctx.methods.handle
        try:
            while not self.closing:
                self._receiving = True
                try:
                    msg = await ws.receive()
                finally:
                    self._receiving = False
                if msg.type is WSMsgType.TEXT:
                    await handle(self, msg.data)
                elif msg.type is WSMsgType.BINARY:
                    if not _looks_like_json(msg.data):
                        self.finish(
                            CloseCode.UNSUPPORTED_DATA, "binary frames not supported"
                        )
                        break
                    await handle(self, bytes(msg.data))
                else:  # close, closing, closed or error (aiohttp sent 1009/1002/1007)
                    break
        finally:
            CONNECTIONS.labels(str(self.device_flag)).dec()
            await self._end()

    async def _join(self) -> bool:
        """Authenticate, register the connection, then send the connect result."""
        connected = await self._authenticate()
        if connected is None:
            return False
        ctx = self.ctx
        record = ConnRecord(
            self.conn_id, ctx.services.node_id, self.device_flag, self.device_level
        )
        self._held = []  # deliveries from now on wait for the connect result
        ctx.hub.add(self)
        gaps = ctx.kick_replay.gaps
        try:
            self.kicks_seen = await ctx.presence.register(self.uid, record)
            ctx.kick_replay.registered(self, gaps)
            await self._kick_others()
        except RedisError:
            REDIS_ERRORS.labels("gateway").inc()
            log.warning("redis unavailable; closing connection %s", self.conn_id)
            self.finish(CloseCode.UNAVAILABLE, "storage unavailable")
            await self._end()
            return False
        except BaseException:
            await self._end()
            raise
        CONNECTIONS.labels(str(self.device_flag)).inc()
        try:
            await self._status_event(online=True)
        except BaseException:
            CONNECTIONS.labels(str(self.device_flag)).dec()
            await self._end()
            raise
        # Only now: a client told it is connected is reachable by deliveries, and
        # the connect result is the first frame it gets.
        held, self._held = self._held, None
        self.reply(connected)
        for frame in held or ():
            self.push(frame)
        return True

    async def _end(self) -> None:
        ctx = self.ctx
        self._held = None
        ctx.hub.remove(self)
        self.finish(CloseCode.NORMAL)
        self.pending.clear()
        ctx.resender.forget(self)
        # In a task of its own: the handler task may be cancelled (the server
        # shuts down, or cancels handlers of lost connections), the clean-up
        # must still run to the end.
        cleanup = asyncio.get_running_loop().create_task(self._leave())
        _closing_tasks.add(cleanup)
        cleanup.add_done_callback(_closing_tasks.discard)
        await asyncio.shield(cleanup)

    async def _leave(self) -> None:
        """Unregister the connection and close its socket."""
        try:
            await self.ctx.presence.unregister(self.uid, self.conn_id)
        except RedisError:
            REDIS_ERRORS.labels("gateway").inc()
            log.warning("could not unregister connection %s", self.conn_id)
        else:
            await self._status_event(online=False)
        if self._closer is not None:
            await self._closer
        else:
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
            if self.transport is not None:
                self.transport.abort()
            return
        with anyio.move_on_after(2.0):
            await self.ws.close(code=code, message=reason)

    # -- authentication ------------------------------------------------------------
    async def _authenticate(self) -> bytes | None:
        """The connect result to send once registered; None if refused."""
        with anyio.move_on_after(self.ctx.settings.ws_auth_timeout):
            return await self._connect_frame()
        self.close_code, self.close_reason = CloseCode.AUTH_TIMEOUT, "auth timeout"
        await self._close()
        return None

    async def _refuse(self, frame: bytes, code: int, reason: str) -> None:
        with contextlib.suppress(ConnectionError):  # the client may be gone already
            await self.ws.send_frame(frame, WSMsgType.TEXT)
        self.close_code, self.close_reason = code, reason
        await self._close()

    async def _connect_frame(self) -> bytes | None:
        msg = await self.ws.receive()
        if msg.type is WSMsgType.TEXT:
            raw = msg.data.encode()
        elif msg.type is WSMsgType.BINARY and _looks_like_json(msg.data):
            raw = bytes(msg.data)
        elif msg.type is WSMsgType.BINARY:
            self.close_code = CloseCode.UNSUPPORTED_DATA
            await self._close()
            return None
        else:
            return None
        try:
            envelope = frames.decode_envelope(raw)
        except (msgspec.DecodeError, RecursionError) as exc:
            await self._refuse(
                frames.error(None, frames.PARSE_ERROR, f"invalid frame: {exc}"),
                CloseCode.POLICY,
                "invalid frame",
            )
            return None
        if envelope.method != "connect" or envelope.id is None:
            await self._refuse(
                frames.error(
                    envelope.id,
                    frames.NOT_AUTHENTICATED,
                    "the first request must be connect",
                ),
                CloseCode.POLICY,
                "not authenticated",
            )
            return None
        try:
            params = frames.decode_connect(frames.params_bytes(envelope))
            check_id(params.uid, "uid")
        except (msgspec.DecodeError, InvalidId):
            params = None
        level: int | None = None
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
                await self._refuse(
                    frames.error(envelope.id, Reason.SYSTEM_ERROR, "ReasonSystemError"),
                    CloseCode.UNAVAILABLE,
                    "unavailable",
                )
                return None
        if params is None or level is None:
            await self._refuse(
                frames.error(envelope.id, Reason.AUTH_FAIL, "ReasonAuthFail"),
                CloseCode.AUTH_FAILED,
                "auth failed",
            )
            return None
        if await self._banned(params.uid):
            await self._refuse(
                frames.error(envelope.id, Reason.BAN, "ReasonBan"),
                CloseCode.AUTH_FAILED,
                "banned",
            )
            return None
        self.uid = params.uid
        self.device_flag = params.deviceFlag
        self.device_level = level
        self.device_id = params.deviceId
        now = int(time.time() * 1000)
        return frames.result(
            envelope.id,
            frames.ConnectResult(
                timeDiff=now - params.clientTimestamp if params.clientTimestamp else 0,
                nodeId=max(self.ctx.node_number(), 0),
            ),
        )

    async def _banned(self, uid: str) -> bool:
        """A user whose person channel is banned may not connect (reference §7)."""
        svc = self.ctx.services
        try:
            return await user_banned(svc.redis, svc.keys, uid)
        except RedisError:
            return False  # the token check just worked; do not refuse on a blip


def _looks_like_json(data: bytes) -> bool:
    return bytes(data).lstrip()[:1] == b"{"
