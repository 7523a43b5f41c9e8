"""The consumer loop of a worker's dispatch shards (DESIGN §5).

One loop reads every shard the worker owns: one XREADGROUP over all their streams
per round (COUNT per stream = ``batch`` / shards), one ``process`` call for the whole
read, then one pipeline of XACKs. Round trips per message fall with the number of
shards instead of rising with it.

Consumer group ``fanout`` (created at id 0 with MKSTREAM; an existing group is
fine; a lost group is recreated at 0, never at ``$``). A shard joins the loop after
its pending entries were claimed (XAUTOCLAIM, min idle 0: we own the shard's lease,
so whoever read them before is gone) and processed. After any error every shard
claims again (entries read but not acknowledged stay pending, and ``>`` never
returns them). A read is acknowledged only after all its side effects; a shard
leaves (``stop``) only between rounds; acknowledged entries are trimmed (XTRIM
MINID to the oldest pending or unread entry).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from broker.keys import Keys
from broker.metrics import REDIS_ERRORS, WORKER_ENTRIES, WORKER_LAG, WORKER_PENDING
from workers.fanout import DispatchRef, parse_entry
from workers.rawreplies import bounded

log = logging.getLogger(__name__)

GROUP = "fanout"
BATCH = 200  # entries per shard and round
BLOCK_MS = 250  # a shard joining or leaving waits at most this long
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


@dataclass(eq=False)
class ShardConsumer:
    """One shard in the loop; :meth:`stop` hands it back after the round in hand."""

    shard: int
    stream: str
    ready: bool = False  # group ensured and pending entries claimed
    stopping: bool = False
    done: anyio.Event = field(default_factory=anyio.Event)
    last_acked: bytes | None = None
    last_trim: float = 0.0

    def stop(self) -> None:
        self.stopping = True


def _refs(shard: int, raw: Iterable[Any]) -> list[DispatchRef]:
    """Parsed entries of one stream; malformed ones are dropped loudly (one would
    otherwise stop the shard for good); entries deleted meanwhile have no fields."""
    refs = []
    for entry_id, fields in raw:
        if not fields:
            continue
        try:
            refs.append(parse_entry(entry_id, fields))
        except (KeyError, ValueError, IndexError, msgspec.DecodeError):
            log.error("shard %d: dropping malformed entry %r", shard, entry_id)
    return refs


class DispatchLoop:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        consumer: str,
        process: Process,
        *,
        batch: int = BATCH,
        block_ms: int = BLOCK_MS,
    ) -> None:
        self.redis = redis  # the hot-path client (workers/rawreplies.py)
        self.keys = keys
        self.consumer = consumer
        self.process = process
        self.batch = batch
        self.block_ms = block_ms
        self.shards: dict[int, ShardConsumer] = {}
        self._changed = anyio.Event()

    def add(self, shard: int) -> ShardConsumer:
        handle = ShardConsumer(shard, self.keys.dispatch(shard))
        self.shards[shard] = handle
        self._changed.set()
        return handle

    async def run(self) -> None:
        backoff = 0.1
        while True:
            try:
                await self._round()
                backoff = 0.1
            except Exception as exc:
                if isinstance(exc, RedisError | OSError | TimeoutError):
                    REDIS_ERRORS.labels("worker").inc()
                else:
                    log.exception("dispatch loop: unexpected error")
                for handle in self.shards.values():
                    handle.ready = False  # claim again what was read, not acked
                if is_nogroup(exc):
                    log.warning("dispatch: a consumer group was lost; recreating")
                    continue
                log.warning("dispatch: %s; retrying in %.1fs", exc, backoff)
                await anyio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    async def _round(self) -> None:
        await self._release_stopped()
        for handle in list(self.shards.values()):
            if not handle.ready and not handle.stopping:
                with bounded():
                    await ensure_group(self.redis, handle.stream)
                await self._claim_pending(handle)
                handle.ready = True
        active = [h for h in self.shards.values() if h.ready and not h.stopping]
        if not active:
            self._changed = anyio.Event()
            if not self.shards:
                await self._changed.wait()
            else:
                await anyio.sleep(0.01)
            return
        with bounded():
            reply: Any = await self.redis.xreadgroup(
                GROUP,
                self.consumer,
                {h.stream: ">" for h in active},
                count=self.batch,
                block=self.block_ms,
            )
        if reply:
            by_stream = {h.stream.encode(): h for h in active}
            # RESP3 answers a map, RESP2 a list of [stream, entries] pairs.
            pairs = reply.items() if isinstance(reply, dict) else reply
            await self._handle(
                [
                    (by_stream[bytes(name)], entries)
                    for name, entries in pairs
                    if entries
                ]
            )
        await self._trim([h for h in active if h.last_acked is not None])

    async def _release_stopped(self) -> None:
        stopped = [h for h in self.shards.values() if h.stopping]
        if not stopped:
            return
        try:
            await self._trim([h for h in stopped if h.last_acked], force=True)
        finally:
            for handle in stopped:
                del self.shards[handle.shard]
                handle.done.set()

    async def _claim_pending(self, handle: ShardConsumer) -> None:
        cursor: Any = "0-0"
        while True:
            with bounded():
                reply = await self.redis.xautoclaim(
                    handle.stream, GROUP, self.consumer, 0, cursor, count=self.batch
                )
            cursor = bytes(reply[0])
            if reply[1]:
                await self._report_redelivery(handle, reply[1])
                await self._handle([(handle, reply[1])])
            if cursor == b"0-0":
                return

    async def _report_redelivery(self, handle: ShardConsumer, raw: Any) -> None:
        """Log how often reclaimed entries were delivered: proof the recovery ran."""
        first, last = bytes(raw[0][0]).decode(), bytes(raw[-1][0]).decode()
        with bounded():
            details = await self.redis.xpending_range(
                handle.stream, GROUP, min=first, max=last, count=len(raw)
            )
        most = max((int(d["times_delivered"]) for d in details), default=0)
        log.info(
            "shard %d: reclaimed %d pending entries (delivery count up to %d)",
            handle.shard,
            len(raw),
            most,
        )

    async def _handle(self, reads: list[tuple[ShardConsumer, Any]]) -> None:
        refs: list[DispatchRef] = []
        for handle, raw in reads:
            refs += _refs(handle.shard, raw)
        # A stop never cuts a read in half; only the deadline may.
        with anyio.CancelScope(shield=True), bounded():
            if refs:
                await self.process(refs)
            async with self.redis.pipeline(transaction=False) as pipe:
                for handle, raw in reads:
                    pipe.xack(handle.stream, GROUP, *[e[0] for e in raw])  # type: ignore[unused-awaitable]
                await pipe.execute()
        for handle, raw in reads:
            WORKER_ENTRIES.labels(str(handle.shard)).inc(len(raw))
            handle.last_acked = bytes(raw[-1][0])

    async def _trim(
        self, handles: Sequence[ShardConsumer], *, force: bool = False
    ) -> None:
        now = time.monotonic()
        due = [h for h in handles if force or now - h.last_trim >= TRIM_EVERY_SECONDS]
        if not due:
            return
        with bounded():
            await self._trim_due(due, now)

    async def _trim_due(self, due: Sequence[ShardConsumer], now: float) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for handle in due:
                pipe.xpending(handle.stream, GROUP)  # type: ignore[unused-awaitable]
            summaries = await pipe.execute()
        async with self.redis.pipeline(transaction=False) as pipe:
            for handle, summary in zip(due, summaries, strict=True):
                if summary["pending"]:
                    min_id = _text(summary["min"])
                else:
                    assert handle.last_acked is not None
                    min_id = next_id(handle.last_acked)
                pipe.xtrim(handle.stream, minid=min_id, approximate=False)  # type: ignore[unused-awaitable]
                pipe.xlen(handle.stream)  # type: ignore[unused-awaitable]
            replies = await pipe.execute()
        for i, (handle, summary) in enumerate(zip(due, summaries, strict=True)):
            shard, pending = str(handle.shard), int(summary["pending"])
            WORKER_PENDING.labels(shard).set(pending)
            WORKER_LAG.labels(shard).set(max(int(replies[2 * i + 1]) - pending, 0))
            handle.last_trim = now
            handle.last_acked = None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
