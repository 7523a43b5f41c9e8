"""Outbox entries read but not yet turned into jobs. Pure: no I/O.

Entries stay pending in the consumer group while they wait here, so a crash loses
nothing (another worker reclaims them); the wait is at most one batch interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workers.webhook_batches import BATCHED_EVENTS, OutboxEntry


@dataclass(slots=True)
class _Waiting:
    since: float
    entries: list[OutboxEntry] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Flush:
    """What to write now: entries that become jobs, and entry ids only to drop
    (malformed, or events the configuration does not send)."""

    entries: list[OutboxEntry]
    drop_ids: list[str]

    def __bool__(self) -> bool:
        return bool(self.entries or self.drop_ids)


class OutboxBuffer:
    def __init__(self, *, batch_size: int, interval: float) -> None:
        self.batch_size = batch_size
        self.interval = interval
        self._immediate: list[OutboxEntry] = []
        self._batched: dict[str, _Waiting] = {}
        self._drop_ids: list[str] = []

    def __len__(self) -> int:
        waiting = sum(len(w.entries) for w in self._batched.values())
        return len(self._immediate) + len(self._drop_ids) + waiting

    def add(self, entry: OutboxEntry, now: float) -> None:
        if entry.event not in BATCHED_EVENTS:
            self._immediate.append(entry)
            return
        waiting = self._batched.get(entry.event)
        if waiting is None:
            waiting = self._batched[entry.event] = _Waiting(now)
        waiting.entries.append(entry)

    def drop(self, entry_id: str) -> None:
        self._drop_ids.append(entry_id)

    def take_ready(self, now: float, *, everything: bool = False) -> Flush:
        """Immediate events and drops always; a batched event's entries once a full
        batch is waiting (whole batches only) or its oldest entry is ``interval``
        old (all of them)."""
        entries, self._immediate = self._immediate, []
        drop_ids, self._drop_ids = self._drop_ids, []
        for event, waiting in list(self._batched.items()):
            if everything or now - waiting.since >= self.interval:
                entries.extend(waiting.entries)
                del self._batched[event]
                continue
            full = len(waiting.entries) // self.batch_size * self.batch_size
            if full:
                entries.extend(waiting.entries[:full])
                waiting.entries = waiting.entries[full:]
                if not waiting.entries:
                    del self._batched[event]
        return Flush(entries, drop_ids)

    def put_back(self, flush: Flush, now: float) -> None:
        """A flush that could not be written (Redis down) waits for the next try."""
        self._drop_ids.extend(flush.drop_ids)
        for entry in flush.entries:
            self.add(entry, now - self.interval)

    def next_deadline(self) -> float | None:
        """When the oldest waiting batch must go out; None when nothing waits."""
        if self._immediate or self._drop_ids:
            return 0.0
        if not self._batched:
            return None
        return min(w.since for w in self._batched.values()) + self.interval
