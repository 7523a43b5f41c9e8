"""Redis I/O of the webhook sender: the outbox group, jobs, schedule, dead letters.

Layout (all under the hash tag ``{webhook}``, so the scripts work on Redis Cluster):
``outbox`` stream → consumer group ``webhooks`` → ``jobs`` hash + ``due`` zset
(+ ``attempts`` hash) → delivered, or the ``dead`` stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import ResponseError

from broker.keys import Keys
from broker.scripts import load
from workers.webhook_batches import (
    Job,
    OutboxEntry,
    PlannedJob,
    decode_job,
    encode_job,
    parse_entry,
)

GROUP = "webhooks"


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    delivery_id: str
    job: Job
    attempt: int


@dataclass(frozen=True, slots=True)
class Claim:
    jobs: list[ClaimedJob]
    next_due_ms: int | None


@dataclass(frozen=True, slots=True)
class QueueConflict:
    """Why a queue call wrote nothing: entries already taken by another worker, and
    event ids queued within the duplicate window."""

    stale_entry_ids: frozenset[str]
    seen_event_ids: frozenset[str]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    entry_id: str
    delivery_id: str
    event: str
    body: bytes
    error: str
    attempts: int


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def is_nogroup(exc: ResponseError) -> bool:
    return str(exc).startswith("NOGROUP")


class WebhookStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._queue: AsyncScript = redis.register_script(load("webhook_queue"))
        self._claim: AsyncScript = redis.register_script(load("webhook_claim"))
        self._done: AsyncScript = redis.register_script(load("webhook_done"))
        self._retry: AsyncScript = redis.register_script(load("webhook_retry"))
        self._bury: AsyncScript = redis.register_script(load("webhook_bury"))
        self._replay: AsyncScript = redis.register_script(load("webhook_replay"))

    # -- outbox ------------------------------------------------------------------
    async def ensure_group(self) -> None:
        """Create the group at the stream's start (never ``$``: entries queued
        before the first worker ran must be sent too); an existing group is fine."""
        try:
            await self.redis.xgroup_create(
                self.keys.webhook_outbox, GROUP, id="0", mkstream=True
            )
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read(self, consumer: str, *, count: int, block_ms: int) -> list[Any]:
        reply: Any = await self.redis.xreadgroup(
            GROUP,
            consumer,
            {self.keys.webhook_outbox: ">"},
            count=count,
            block=max(block_ms, 1),
        )
        entries: list[Any] = []
        for _stream, items in reply or []:
            entries.extend(items)
        return entries

    async def reclaim(
        self, consumer: str, *, min_idle_ms: int, count: int
    ) -> list[Any]:
        """Entries another (dead) consumer read but never queued as jobs."""
        reply: Any = await self.redis.xautoclaim(
            self.keys.webhook_outbox, GROUP, consumer, min_idle_ms, "0-0", count=count
        )
        return list(reply[1])

    async def forget_idle_consumers(self, me: str, *, idle_ms: int) -> int:
        """Remove consumers that hold nothing and have not read for a long time, so
        restarts do not pile up names in the group."""
        removed = 0
        consumers: Any = await self.redis.xinfo_consumers(
            self.keys.webhook_outbox, GROUP
        )
        for info in consumers:
            name = _text(info["name"])
            if name != me and int(info["pending"]) == 0 and int(info["idle"]) > idle_ms:
                await self.redis.xgroup_delconsumer(
                    self.keys.webhook_outbox, GROUP, name
                )
                removed += 1
        return removed

    async def queue(
        self,
        entry_ids: Sequence[str],
        jobs: Sequence[PlannedJob],
        *,
        now_ms: int,
        seen_ttl_ms: int,
    ) -> QueueConflict | None:
        """Write jobs and acknowledge + delete their entries in one script."""
        event_ids = (
            [eid for job in jobs for eid in job.event_ids] if seen_ttl_ms else []
        )
        keys = [self.keys.webhook_outbox, self.keys.webhook_jobs, self.keys.webhook_due]
        keys += [self.keys.webhook_seen(eid) for eid in event_ids]
        args: list[Any] = [GROUP, now_ms, seen_ttl_ms, len(entry_ids), *entry_ids]
        for job in jobs:
            args += [job.delivery_id, encode_job(job.job)]
        reply: Any = await self._queue(keys=keys, args=args)
        if int(reply[0]) == 1:
            return None
        return QueueConflict(
            frozenset(_text(e) for e in reply[1]),
            frozenset(event_ids[int(i) - 1] for i in reply[2]),
        )

    # -- jobs ----------------------------------------------------------------------
    async def claim(self, *, now_ms: int, limit: int, lease_ms: int) -> Claim:
        reply: Any = await self._claim(
            keys=[
                self.keys.webhook_due,
                self.keys.webhook_jobs,
                self.keys.webhook_attempts,
            ],
            args=[now_ms, limit, lease_ms],
        )
        head = int(reply[0])
        jobs = [
            ClaimedJob(_text(reply[i]), decode_job(reply[i + 1]), int(reply[i + 2]))
            for i in range(1, len(reply), 3)
        ]
        return Claim(jobs, None if head < 0 else head)

    def _job_keys(self) -> list[str]:
        return [
            self.keys.webhook_jobs,
            self.keys.webhook_due,
            self.keys.webhook_attempts,
        ]

    async def done(self, delivery_id: str) -> None:
        await self._done(keys=self._job_keys(), args=[delivery_id])

    async def retry(self, claimed: ClaimedJob, *, due_ms: int) -> bool:
        reply = await self._retry(
            keys=self._job_keys(), args=[claimed.delivery_id, claimed.attempt, due_ms]
        )
        return bool(int(reply))

    async def bury(self, claimed: ClaimedJob, error: str) -> bool:
        reply = await self._bury(
            keys=[*self._job_keys(), self.keys.webhook_dead],
            args=[
                claimed.delivery_id,
                claimed.attempt,
                claimed.job.event,
                claimed.job.body,
                error,
            ],
        )
        return bool(int(reply))

    # -- dead letters -----------------------------------------------------------------
    async def dead_letters(self, *, limit: int, after: str = "-") -> list[DeadLetter]:
        reply: Any = await self.redis.xrange(
            self.keys.webhook_dead, min=after, max="+", count=limit
        )
        letters = []
        for entry_id, fields in reply:
            letters.append(
                DeadLetter(
                    entry_id=_text(entry_id),
                    delivery_id=_text(fields[b"id"]),
                    event=_text(fields[b"e"]),
                    body=fields[b"d"],
                    error=_text(fields.get(b"err", b"")),
                    attempts=int(fields.get(b"n", b"0")),
                )
            )
        return letters

    async def replay(self, letter: DeadLetter, *, now_ms: int) -> bool:
        job = Job(event=letter.event, body=letter.body)
        reply = await self._replay(
            keys=[
                self.keys.webhook_dead,
                self.keys.webhook_jobs,
                self.keys.webhook_due,
                self.keys.webhook_attempts,
            ],
            args=[letter.entry_id, letter.delivery_id, encode_job(job), now_ms],
        )
        return bool(int(reply))

    async def counts(self) -> dict[str, int]:
        """Backlog figures for ``jindou status``."""
        return {
            "outbox": int(await self.redis.xlen(self.keys.webhook_outbox)),
            "jobs": int(await self.redis.hlen(self.keys.webhook_jobs)),
            "dead": int(await self.redis.xlen(self.keys.webhook_dead)),
        }


def parse_entries(raw: Sequence[Any]) -> tuple[list[OutboxEntry], list[str]]:
    """Stream replies → entries, plus ids of malformed entries to drop."""
    entries: list[OutboxEntry] = []
    malformed: list[str] = []
    for entry_id, fields in raw:
        if entry_id is None:
            continue
        parsed = parse_entry(_text(entry_id), fields)
        if parsed is None:
            malformed.append(_text(entry_id))
        else:
            entries.append(parsed)
    return entries, malformed
