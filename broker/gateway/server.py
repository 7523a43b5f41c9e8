"""The gateway of one api node: the WebSocket endpoint (any path), the node's
heartbeat and its pub/sub subscriber, over the process's shared Services."""

from __future__ import annotations

import contextlib
import logging
import socket

import anyio
from aiohttp import web
from redis.exceptions import RedisError

from broker.gateway.hub import Hub
from broker.gateway.ip_limits import IpLimits
from broker.gateway.kick_replay import KickReplay
from broker.gateway.methods import Methods
from broker.gateway.presence import ConnRecord, Presence
from broker.gateway.resend import Resender
from broker.gateway.session import CloseCode, GatewayContext, Session
from broker.gateway.status_events import wants_status_events
from broker.gateway.subscriber import NodeSubscriber
from broker.metrics import REDIS_ERRORS, WS_REFUSED
from broker.services import Services

log = logging.getLogger(__name__)


class Gateway:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.settings = services.settings
        self.hub = Hub()
        self.presence = Presence(
            services.redis, services.keys, self.settings.node_heartbeat_ms
        )
        self.kick_replay = KickReplay(services.redis, services.keys, self.hub)
        self.subscriber = NodeSubscriber(
            self.settings.redis_url,
            services.keys,
            services.node_id,
            self.hub,
            on_gap=self.kick_replay.after_gap,
        )
        self.resender = Resender(self.settings.ws_retry_ms)
        self.ctx = GatewayContext(
            services=services,
            settings=self.settings,
            hub=self.hub,
            presence=self.presence,
            node_number=lambda: services.lease.number,
            resender=self.resender,
            kick_replay=self.kick_replay,
            methods=Methods(services),
            status_events=wants_status_events(self.settings),
        )
        self.sessions: set[Session] = set()
        self.ip_limits = IpLimits(
            self.settings.ws_max_conns_per_ip,
            self.settings.ws_conn_rate_per_ip,
            self.settings.ws_conn_burst_per_ip,
        )
        self._drained: anyio.Event | None = None

    async def run(self) -> None:
        """Heartbeat and subscription until cancelled; then leave the node set."""
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.subscriber.run)
                tg.start_soon(self._heartbeat)
        finally:
            self.resender.stop()
            with anyio.CancelScope(shield=True):
                try:
                    await self.presence.leave(self.services.node_id)
                except RedisError:
                    log.warning("could not remove node %s", self.services.node_id)

    async def _heartbeat(self) -> None:
        interval = self.settings.node_heartbeat_ms / 1000
        first = True
        while True:
            try:
                missing = await self.presence.beat(
                    self.services.node_id, len(self.sessions)
                )
                if missing and not first:
                    # Taken for dead (a long pause): our connections were removed.
                    log.warning("node was taken for dead; registering again")
                    await self.presence.register_many(self._records())
                first = False
            except RedisError:
                REDIS_ERRORS.labels("gateway").inc()
                log.warning("node heartbeat failed; redis unavailable")
            await anyio.sleep(interval)

    def _records(self) -> list[tuple[str, ConnRecord]]:
        node_id = self.services.node_id
        return [
            (c.uid, ConnRecord(c.conn_id, node_id, c.device_flag, c.device_level))
            for c in self.hub.connections()
        ]

    async def ready(self) -> None:
        """Wait until the node is subscribed (deliveries can reach it)."""
        await self.subscriber.subscribed.wait()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        # The peer address: behind a proxy that is the proxy's (docs/gateway.md).
        ip = request.remote or ""
        refused = self.ip_limits.admit(ip)
        if refused is not None:
            WS_REFUSED.labels(refused.reason).inc()
            return web.json_response(
                {"status": 429, "msg": refused.msg},
                status=429,
                headers={"Retry-After": "1"},
            )
        session: Session | None = None
        try:
            ws = web.WebSocketResponse(
                max_msg_size=self.settings.ws_max_frame,
                # Frames are encoded once and shared; per-connection deflate would
                # redo the work for every client.
                compress=False,
                timeout=2.0,
                autoping=True,  # answers pings as frames are read; no task, no timer
                heartbeat=None,
            )
            await ws.prepare(request)
            self._bound_kernel_buffer(request)
            session = Session(ws, self.ctx, request.transport, request.protocol)
            self.sessions.add(session)
            await session.serve()
            return ws
        finally:
            self.ip_limits.release(ip)
            if session is not None:
                self.sessions.discard(session)
                if not self.sessions and self._drained is not None:
                    self._drained.set()

    def _bound_kernel_buffer(self, request: web.BaseRequest) -> None:
        """Cap what the kernel holds for a client that stops reading; otherwise
        a few MB per socket sit there before the outbox limit can act."""
        size = self.settings.ws_socket_sndbuf
        sock = request.transport.get_extra_info("socket") if request.transport else None
        if size > 0 and sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)

    async def subscription_check(self) -> str | None:
        """Readiness: live deliveries reach this node only while it is subscribed."""
        return None if self.subscriber.healthy else "node pub/sub subscription lost"

    async def drain(self) -> None:
        """Close every socket with 1001 and wait for the sessions to end."""
        self._drained = anyio.Event()
        self.close_all()
        if self.sessions:
            await self._drained.wait()

    def close_all(self, code: int = CloseCode.GOING_AWAY) -> None:
        for session in list(self.sessions):
            # The close frame is the reconnect hint: 1001 + this reason. No JSON-RPC
            # `disconnect` notification: the SDKs take that as final and stay away.
            session.finish(code, "server going away: reconnect")


def create_gateway_server(gateway: Gateway) -> web.Server:
    """The WebSocket endpoint on any path: a bare aiohttp server, no application
    or router (they cost memory per connection: design-notes "Gateway
    per-connection cost")."""
    return web.Server(gateway.handle)
