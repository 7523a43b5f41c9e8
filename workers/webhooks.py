"""The webhook sender: outbox → jobs → signed POSTs, retried, dead-lettered.

Two loops per worker process, sharing nothing but Redis with other workers:

- the outbox loop reads the outbox through the consumer group ``webhooks``, holds
  batched events for at most one batch interval, and turns them into jobs
  atomically with their acknowledgement (XAUTOCLAIM hands a dead worker's unqueued
  entries to a live one);
- the delivery loop leases due jobs from the ``due`` zset and POSTs them with bounded
  concurrency; failures are rescheduled in Redis with back-off, so a slow or dead
  receiver costs Redis memory (the backlog), never worker memory or the send path.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time

import aiohttp
import anyio
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from broker.metrics import REDIS_ERRORS, WEBHOOK_DEAD_LETTERS, WEBHOOK_DELIVERIES
from broker.redis_conn import keys_for
from broker.settings import Settings
from workers.webhook_batches import plan_jobs
from workers.webhook_buffer import Flush, OutboxBuffer
from workers.webhook_http import PostResult, new_session, post_event
from workers.webhook_policy import ReceiverHealth, allowed_events, retry_delay
from workers.webhook_store import ClaimedJob, WebhookStore, is_nogroup, parse_entries

log = logging.getLogger(__name__)

_DELIVERED = WEBHOOK_DELIVERIES.labels(outcome="success")
_FAILED = WEBHOOK_DELIVERIES.labels(outcome="failure")
_REDIS_ERRORS = REDIS_ERRORS.labels(component="webhooks")

READ_COUNT = 500
MAX_BUFFERED = 2_000  # stop reading while this many entries wait (Redis trouble)
IDLE_POLL = 1.0  # longest sleep of the delivery loop; retries due elsewhere show up
LEASE_FACTOR = 2  # a claimed job stays leased for this many POST timeouts
FORGET_CONSUMERS_AFTER_MS = 600_000  # consumers idle this long and holding nothing
FORGET_EVERY = 60.0
SHUTDOWN_FLUSH = 2.0
PROBE_AFTER_FAILURES = 20  # failed attempts in a row before probing (receiver down)


def now_ms() -> int:
    """Wall-clock ms: due times are shared by all workers through Redis."""
    return int(time.time() * 1000)


def consumer_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"


async def run_webhook_sender(
    settings: Settings, redis: Redis, *, consumer: str | None = None
) -> None:
    """Run until cancelled. Does nothing when ``JINDOU_WEBHOOK_URL`` is not set or
    ``JINDOU_WEBHOOK_SENDER`` is off."""
    if not settings.webhook_url:
        log.info("JINDOU_WEBHOOK_URL is not set; webhooks are off")
        return
    if not settings.webhook_sender:
        log.info("JINDOU_WEBHOOK_SENDER=0: this worker does not send webhooks")
        return
    if not settings.webhook_secret:
        log.warning("JINDOU_WEBHOOK_SECRET is not set; webhooks are sent unsigned")
    store = WebhookStore(redis, keys_for(settings))
    await WebhookSender(settings, store, consumer or consumer_name()).run()


class WebhookSender:
    def __init__(self, settings: Settings, store: WebhookStore, consumer: str) -> None:
        self.settings = settings
        self.store = store
        self.consumer = consumer
        self.allowed = allowed_events(settings.webhook_events)
        self.health = ReceiverHealth(
            threshold=PROBE_AFTER_FAILURES, probe_interval=settings.webhook_backoff_base
        )
        # Set when the delivery loop may have something to do sooner than it thought.
        self._wake = anyio.Event()

    async def run(self) -> None:
        log.info(
            "webhook sender %s: events %s → %s",
            self.consumer,
            ",".join(sorted(self.allowed)),
            self.settings.webhook_url,
        )
        async with (
            new_session(
                timeout=self.settings.webhook_timeout,
                concurrency=self.settings.webhook_concurrency,
            ) as session,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(self._outbox_loop)
            tg.start_soon(self._delivery_loop, session)

    # -- outbox → jobs --------------------------------------------------------------
    async def _outbox_loop(self) -> None:
        settings = self.settings
        buffer = OutboxBuffer(
            batch_size=settings.webhook_batch_size,
            interval=settings.webhook_batch_interval,
        )
        group_ready = False
        next_reclaim = next_forget = 0.0
        failures = 0
        try:
            while True:
                try:
                    if not group_ready:
                        await self.store.ensure_group()
                        group_ready = True
                    now = time.monotonic()
                    if now >= next_reclaim:
                        await self._reclaim(buffer)
                        next_reclaim = now + settings.webhook_reclaim_after / 2
                    if now >= next_forget:
                        await self.store.forget_idle_consumers(
                            self.consumer, idle_ms=FORGET_CONSUMERS_AFTER_MS
                        )
                        next_forget = now + FORGET_EVERY
                    await self._read(buffer)
                    await self._flush(buffer, everything=False)
                    failures = 0
                except (RedisError, OSError) as exc:
                    _REDIS_ERRORS.inc()
                    if isinstance(exc, ResponseError) and is_nogroup(exc):
                        # The outbox or its group vanished (Redis lost data).
                        log.warning("webhook outbox group missing; recreating it")
                        group_ready = False
                        continue
                    failures += 1
                    log.warning("webhook outbox loop: redis error: %s", exc)
                    await anyio.sleep(min(5.0, 0.1 * 2**failures))
        finally:
            # Hand over what was read, so a clean shutdown leaves nothing to reclaim.
            with anyio.CancelScope(shield=True), anyio.move_on_after(SHUTDOWN_FLUSH):
                await self._flush(buffer, everything=True)

    async def _read(self, buffer: OutboxBuffer) -> None:
        if len(buffer) >= MAX_BUFFERED:
            return
        deadline = buffer.next_deadline()
        interval = self.settings.webhook_batch_interval
        wait = interval if deadline is None else deadline - time.monotonic()
        if wait <= 0:
            return
        raw = await self.store.read(
            self.consumer, count=READ_COUNT, block_ms=int(min(wait, interval) * 1000)
        )
        self._add(buffer, raw)

    async def _reclaim(self, buffer: OutboxBuffer) -> None:
        raw = await self.store.reclaim(
            self.consumer,
            min_idle_ms=int(self.settings.webhook_reclaim_after * 1000),
            count=READ_COUNT,
        )
        if raw:
            log.info("webhook outbox: reclaimed %d stale entries", len(raw))
        self._add(buffer, raw)

    def _add(self, buffer: OutboxBuffer, raw: list[object]) -> None:
        entries, malformed = parse_entries(raw)
        for entry_id in malformed:
            log.warning("webhook outbox: dropping malformed entry %s", entry_id)
            buffer.drop(entry_id)
        now = time.monotonic()
        for entry in entries:
            if entry.event in self.allowed:
                buffer.add(entry, now)
            else:
                buffer.drop(entry.entry_id)

    async def _flush(self, buffer: OutboxBuffer, *, everything: bool) -> None:
        flush = buffer.take_ready(time.monotonic(), everything=everything)
        if not flush:
            return
        try:
            await self._queue(flush)
        except BaseException:
            buffer.put_back(flush, time.monotonic())
            raise
        self._wake.set()

    async def _queue(self, flush: Flush) -> None:
        """Write the jobs; on a conflict drop what another worker already queued
        and turn duplicates of recently queued event ids into plain drops."""
        settings = self.settings
        entries, drop_ids = flush.entries, list(flush.drop_ids)
        for _ in range(len(entries) + len(drop_ids) + 1):
            jobs = plan_jobs(
                entries,
                batch_size=settings.webhook_batch_size,
                compress_over=settings.webhook_compress_over,
            )
            conflict = await self.store.queue(
                [e.entry_id for e in entries] + drop_ids,
                jobs,
                now_ms=now_ms(),
                seen_ttl_ms=settings.webhook_dedupe_ttl * 1000,
            )
            if conflict is None:
                return
            stale, seen = conflict.stale_entry_ids, conflict.seen_event_ids
            drop_ids = [d for d in drop_ids if d not in stale]
            drop_ids += [
                e.entry_id
                for e in entries
                if e.event_id in seen and e.entry_id not in stale
            ]
            entries = [
                e for e in entries if e.entry_id not in stale and e.event_id not in seen
            ]
        raise RuntimeError(
            "webhook outbox: queueing did not converge"
        )  # pragma: no cover

    # -- jobs → POSTs ---------------------------------------------------------------
    async def _delivery_loop(self, session: aiohttp.ClientSession) -> None:
        settings = self.settings
        lease_ms = int(settings.webhook_timeout * LEASE_FACTOR * 1000)
        slots = anyio.Semaphore(settings.webhook_concurrency)
        failures = 0
        async with anyio.create_task_group() as tg:
            while True:
                await slots.acquire()
                in_flight = settings.webhook_concurrency - slots.value - 1
                now = time.monotonic()
                limit = self.health.claim_limit(slots.value + 1, in_flight, now)
                if not limit:
                    # The receiver is down: wait for the next probe (or a settle).
                    slots.release()
                    with anyio.move_on_after(max(0.005, self.health.pause(now))):
                        await self._wake.wait()
                    self._wake = anyio.Event()
                    continue
                try:
                    claim = await self.store.claim(
                        now_ms=now_ms(), limit=limit, lease_ms=lease_ms
                    )
                except (RedisError, OSError) as exc:
                    _REDIS_ERRORS.inc()
                    slots.release()
                    failures += 1
                    log.warning("webhook delivery loop: redis error: %s", exc)
                    await anyio.sleep(min(5.0, 0.1 * 2**failures))
                    continue
                failures = 0
                if not claim.jobs:
                    slots.release()
                    await self._idle(claim.next_due_ms)
                    continue
                for index, claimed in enumerate(claim.jobs):
                    if index:
                        slots.acquire_nowait()  # free: only this loop acquires
                    tg.start_soon(self._attempt, session, claimed, slots)

    async def _idle(self, next_due_ms: int | None) -> None:
        delay = IDLE_POLL
        if next_due_ms is not None:
            delay = min(IDLE_POLL, max(0.005, (next_due_ms - now_ms()) / 1000))
        with anyio.move_on_after(delay):
            await self._wake.wait()
        self._wake = anyio.Event()

    async def _attempt(
        self,
        session: aiohttp.ClientSession,
        claimed: ClaimedJob,
        slots: anyio.Semaphore,
    ) -> None:
        settings = self.settings
        try:
            result = await post_event(
                session,
                settings.webhook_url,
                event=claimed.job.event,
                delivery_id=claimed.delivery_id,
                body=claimed.job.body,
                secret=settings.webhook_secret,
                attempt=claimed.attempt,
            )
            await self._settle(claimed, result)
        except anyio.get_cancelled_exc_class():
            # Shutting down mid-POST: hand the job back now rather than at lease end.
            with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
                await self.store.retry(claimed, due_ms=now_ms())
            raise
        except (RedisError, OSError) as exc:
            _REDIS_ERRORS.inc()
            # The lease runs out and the job is tried again under the same id.
            log.warning(
                "webhook %s: could not record outcome: %s", claimed.delivery_id, exc
            )
        finally:
            slots.release()

    async def _settle(self, claimed: ClaimedJob, result: PostResult) -> None:
        (_DELIVERED if result.delivered else _FAILED).inc()
        was_down = self.health.down
        self.health.record(result.delivered, time.monotonic())
        if was_down != self.health.down:
            log.warning(
                "webhook receiver %s (%s)",
                "is back" if was_down else "keeps failing; probing it",
                result.detail,
            )
        try:
            await self._record_outcome(claimed, result)
        finally:
            # The delivery loop may sleep past a new due time or a probe slot.
            self._wake.set()

    async def _record_outcome(self, claimed: ClaimedJob, result: PostResult) -> None:
        settings = self.settings
        if result.delivered:
            await self.store.done(claimed.delivery_id)
        elif claimed.attempt >= settings.webhook_max_attempts:
            if await self.store.bury(claimed, result.detail):
                WEBHOOK_DEAD_LETTERS.inc()
                log.warning(
                    "webhook %s (%s) dead-lettered after %d attempts: %s",
                    claimed.delivery_id,
                    claimed.job.event,
                    claimed.attempt,
                    result.detail,
                )
        else:
            delay = retry_delay(claimed.attempt, settings.webhook_backoff_base)
            log.debug(
                "webhook %s attempt %d failed (%s); retry in %.1fs",
                claimed.delivery_id,
                claimed.attempt,
                result.detail,
                delay,
            )
            await self.store.retry(claimed, due_ms=now_ms() + int(delay * 1000))
