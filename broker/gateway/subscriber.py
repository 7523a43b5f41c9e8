"""The node's pub/sub subscription: Delivery frames and control frames.

It uses its own Redis connection without redis-py's silent reconnect, so a lost
subscription is noticed: the node resubscribes and tells every client to re-sync by
offset, since deliveries published during the gap are gone (R7).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

import anyio
import msgspec
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from broker.gateway import frames
from broker.gateway.control import decode_control
from broker.gateway.hub import Hub
from broker.keys import Keys
from broker.protocol import Delivery

log = logging.getLogger(__name__)

decode_delivery = msgspec.msgpack.Decoder(Delivery).decode

RESYNC_EVENT = "jindou.resync"
MIN_BACKOFF = 0.05
MAX_BACKOFF = 2.0
IDLE_SECONDS = 1.0  # a read this long without a frame: health check


def resync_event() -> bytes:
    """The ``event`` that tells a client to catch up by offset (channel.messagesync)."""
    return frames.notification(
        "event",
        frames.EventParams(
            id=secrets.token_hex(8),
            type=RESYNC_EVENT,
            timestamp=int(time.time() * 1000),
            data='{"reason":"live delivery was interrupted; sync by offset"}',
        ),
    )


class NodeSubscriber:
    def __init__(
        self,
        redis_url: str,
        keys: Keys,
        node_id: str,
        hub: Hub,
        on_gap: Callable[[], None] | None = None,
    ) -> None:
        self.redis_url = redis_url
        self.on_gap = on_gap  # after a resubscription: what the gap may have lost
        self.keys = keys
        self.hub = hub
        self.delivery_channel = keys.node_channel(node_id).encode()
        self.control_channel = keys.gateway_control.encode()
        self.subscribed = anyio.Event()
        self.healthy = False
        self.resubscriptions = 0

    def _client(self) -> Redis:
        return Redis.from_url(
            self.redis_url,
            decode_responses=False,
            socket_connect_timeout=1.0,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=5,
        )

    async def run(self) -> None:
        backoff = MIN_BACKOFF
        while True:
            try:
                await self._listen(on_subscribed=self._on_subscribed)
            except (RedisError, OSError) as exc:
                log.warning("node subscription lost (%s); resubscribing", exc)
            # Back off only while Redis keeps refusing; a fresh loss retries at once.
            backoff = MIN_BACKOFF if self.healthy else min(backoff * 2, MAX_BACKOFF)
            self.healthy = False
            await anyio.sleep(backoff)

    def _on_subscribed(self) -> None:
        if self.subscribed.is_set():
            # Deliveries published while we were away are lost: clients catch up.
            self.resubscriptions += 1
            self.hub.broadcast(resync_event())
            if self.on_gap is not None:
                self.on_gap()
        self.healthy = True
        self.subscribed.set()

    async def _listen(self, on_subscribed: Callable[[], None]) -> None:
        redis = self._client()
        pubsub = redis.pubsub()
        try:
            await pubsub.subscribe(self.delivery_channel, self.control_channel)
            conn: Any = pubsub.connection  # set by subscribe()
            # Replies straight from the connection: get_message's health check,
            # retry wrapper and message dict cost more per Delivery frame than
            # the frame's own decoding. When idle, check_health pings as before.
            while True:
                reply = await conn.read_response(
                    timeout=IDLE_SECONDS, disconnect_on_error=False, push_request=True
                )
                if reply is None:
                    await pubsub.check_health()  # type: ignore[no-untyped-call]
                    continue
                self._handle(reply, on_subscribed)
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                finally:
                    await redis.aclose()

    def _handle(self, reply: Any, on_subscribed: Callable[[], None]) -> None:
        """One pub/sub reply: ``[kind, channel, data or count]`` (or a PONG)."""
        if not isinstance(reply, list) or len(reply) != 3:
            return  # PONG of a health check
        kind, channel, data = reply
        if kind == b"message":
            try:
                if channel == self.delivery_channel:
                    self.hub.deliver(decode_delivery(data))
                else:
                    self.hub.kick(decode_control(data))
            except msgspec.DecodeError:
                log.warning("undecodable frame on %r", channel)
        elif kind == b"subscribe" and data == 2:  # both channels are subscribed
            on_subscribed()
