"""Transient and command messages: the owner of shard k listens on ``live:{s<k>}``
and fans them out to online recipients only (at-most-once, DESIGN §2)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio
from redis.asyncio import Redis
from redis.exceptions import RedisError

from broker.keys import Keys
from broker.protocol import LiveMessage
from workers.fanout import decode_live
from workers.rawreplies import bounded

log = logging.getLogger(__name__)

MAX_BACKOFF = 5.0

Deliver = Callable[[LiveMessage], Awaitable[None]]


class LiveListener:
    def __init__(self, redis: Redis, keys: Keys, deliver: Deliver) -> None:
        self.redis = redis
        self.keys = keys
        self.deliver = deliver
        self.wanted: set[str] = set()
        self._changed = anyio.Event()

    def set_shards(self, shards: set[int]) -> None:
        wanted = {self.keys.live(shard) for shard in shards}
        if wanted != self.wanted:
            self.wanted = wanted
            self._changed.set()

    async def run(self) -> None:
        backoff = 0.1
        while True:
            try:
                await self._listen()
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning("live channels: %s; resubscribing in %.1fs", exc, backoff)
                await anyio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    async def _listen(self) -> None:
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        subscribed: set[str] = set()
        try:
            while True:
                if self._changed.is_set() or not subscribed:
                    self._changed = anyio.Event()
                    gone, new = subscribed - self.wanted, self.wanted - subscribed
                    if gone:
                        await pubsub.unsubscribe(*gone)
                    if new:
                        await pubsub.subscribe(*new)
                    subscribed = set(self.wanted)
                if not subscribed:
                    await self._changed.wait()
                    continue
                message = await pubsub.get_message(timeout=0.5)
                if message is None or message["type"] != "message":
                    continue
                try:
                    live = decode_live(message["data"])
                except Exception:
                    log.warning("dropping a malformed live message", exc_info=True)
                    continue
                with bounded():  # the fan-out client has no read timeout
                    await self.deliver(live)
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]
