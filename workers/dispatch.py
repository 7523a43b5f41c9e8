"""The consumer loop of one dispatch shard (DESIGN §5).

Consumer group ``fanout`` (created at id 0 with MKSTREAM; an existing group is
fine; a lost group is recreated at 0, never at ``$``). On start and after any
error: claim every pending entry first (XAUTOCLAIM, min idle 0: we own the shard's
lease, so whoever read them before is gone), then read new ones (XREADGROUP ``>``).
A batch is acknowledged only after all its side effects; acknowledged entries are
trimmed (XTRIM MINID to the oldest pending or unread entry).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from broker.keys import Keys
from broker.metrics import REDIS_ERRORS, WORKER_ENTRIES, WORKER_LAG, WORKER_PENDING
from workers.fanout import DispatchRef, parse_entry

log = logging.getLogger(__name__)

GROUP = "fanout"
BATCH = 200
BLOCK_MS = 5_000
TRIM_EVERY_SECONDS = 0.5
MAX_BACKOFF = 5.0

Process = Callable[[Sequence[DispatchRef]], Awaitable[None]]


def is_nogroup(exc: Exception) -> bool:
    return isinstance(exc, ResponseError) and str(exc).startswith("NOGROUP")


def next_id(entry_id: bytes) -> str:
    """The smallest stream id after ``entry_id``."""
    ms, _, seq = entry_id.decode().partition("-")
    return f"{ms}-{int(seq or 0) + 1}"


async def ensure_group(redis: Redis, stream: str) -> None:
    try:
        await redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


class ShardConsumer:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        shard: int,
        consumer: str,
        process: Process,
        *,
        batch: int = BATCH,
        block_ms: int = BLOCK_MS,
    ) -> None:
        self.redis = redis
        self.shard = shard
        self.stream = keys.dispatch(shard)
        self.consumer = consumer
        self.process = process
        self.batch = batch
        self.block_ms = block_ms
        self._stopping = False
        self.done = anyio.Event()
        self._read_scope: anyio.CancelScope | None = None
        self._last_trim = 0.0
        self._last_acked: bytes | None = None

    def stopping(self) -> bool:
        return self._stopping

    def stop(self) -> None:
        """Finish the batch in hand, acknowledge it, then return from :meth:`run`."""
        self._stopping = True
        if self._read_scope is not None:
            self._read_scope.cancel()  # only a blocked read is interrupted

    async def run(self) -> None:
        backoff = 0.1
        try:
            while not self.stopping():
                try:
                    await ensure_group(self.redis, self.stream)
                    await self._claim_pending()
                    while not self.stopping():
                        await self._read_new()
                        backoff = 0.1
                    await self._trim(force=True)
                except Exception as exc:
                    if self.stopping():
                        break
                    if isinstance(exc, RedisError | OSError):
                        REDIS_ERRORS.labels("worker").inc()
                    else:
                        log.exception("shard %d: unexpected error", self.shard)
                    if is_nogroup(exc):
                        log.warning(
                            "shard %d: consumer group lost; recreating", self.shard
                        )
                        continue
                    log.warning(
                        "shard %d: %s; retrying in %.1fs", self.shard, exc, backoff
                    )
                    await anyio.sleep(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF)
        finally:
            self.done.set()

    async def _claim_pending(self) -> None:
        cursor = "0-0"
        while not self.stopping():
            reply = await self.redis.xautoclaim(
                self.stream, GROUP, self.consumer, 0, cursor, count=self.batch
            )
            cursor = _text(reply[0])
            if reply[1]:
                await self._report_redelivery(reply[1])
                await self._handle(reply[1])
            if cursor == "0-0":
                return

    async def _report_redelivery(self, raw: Sequence[Any]) -> None:
        """Log how often reclaimed entries were delivered: proof the recovery ran."""
        first, last = _text(raw[0][0]), _text(raw[-1][0])
        details = await self.redis.xpending_range(
            self.stream, GROUP, min=first, max=last, count=len(raw)
        )
        most = max((int(d["times_delivered"]) for d in details), default=0)
        log.info(
            "shard %d: reclaimed %d pending entries (delivery count up to %d)",
            self.shard,
            len(raw),
            most,
        )

    async def _read_new(self) -> None:
        reply: Any = None
        with anyio.CancelScope() as scope:
            self._read_scope = scope
            if self.stopping():
                scope.cancel()
            reply = await self.redis.xreadgroup(
                GROUP,
                self.consumer,
                {self.stream: ">"},
                count=self.batch,
                block=self.block_ms,
            )
        self._read_scope = None
        if reply:
            await self._handle(reply[0][1])
        await self._trim()

    async def _handle(self, raw: Sequence[Any]) -> None:
        # Redis 6.2's XAUTOCLAIM reports entries deleted meanwhile with no fields.
        ids = [bytes(entry_id) for entry_id, _ in raw]
        entries = []
        for entry_id, (_, fields) in zip(ids, raw, strict=True):
            if not fields:
                continue
            try:
                entries.append(parse_entry(entry_id, fields))
            except (KeyError, ValueError, msgspec.DecodeError, msgspec.ValidationError):
                # A malformed entry would stop the shard for good; skip it loudly.
                log.error("shard %d: dropping malformed entry %r", self.shard, entry_id)
        with anyio.CancelScope(shield=True):  # a stop never cuts a batch in half
            if entries:
                await self.process(entries)
            await self.redis.xack(self.stream, GROUP, *ids)
        WORKER_ENTRIES.labels(str(self.shard)).inc(len(ids))
        self._last_acked = ids[-1]

    async def _trim(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if self._last_acked is None or (
            not force and now - self._last_trim < TRIM_EVERY_SECONDS
        ):
            return
        self._last_trim = now
        summary = await self.redis.xpending(self.stream, GROUP)
        WORKER_PENDING.labels(str(self.shard)).set(int(summary["pending"]))
        if summary["pending"]:
            min_id = _text(summary["min"])
        else:
            min_id = next_id(self._last_acked)
        await self.redis.xtrim(self.stream, minid=min_id, approximate=False)
        unread = int(await self.redis.xlen(self.stream)) - int(summary["pending"])
        WORKER_LAG.labels(str(self.shard)).set(max(unread, 0))
        self._last_acked = None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
