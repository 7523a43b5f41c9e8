"""Turning outbox entries into deliveries (jobs). Pure: no I/O.

A job is one POST: an event name and the exact body, stored in Redis before its first
attempt under a delivery id that never changes (docs/design-notes.md, "Webhook
delivery ids"):

- events sent one per POST (``msg.offline``): the producer's event id
  (``o-<message_id>``), so even a re-enqueued event keeps its id;
- batched events (``msg.notify``, ``user.onlinestatus``): ``<event>:<outbox entry id
  of the batch's first entry>``. A batch is formed once, atomically with the
  acknowledgement of its entries, so every entry belongs to exactly one batch and the
  first entry's id names it uniquely.
"""

from __future__ import annotations

import base64
import gzip
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

MSG_NOTIFY = "msg.notify"
MSG_OFFLINE = "msg.offline"
USER_ONLINESTATUS = "user.onlinestatus"
BATCHED_EVENTS = frozenset({MSG_NOTIFY, USER_ONLINESTATUS})


class Job(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """One POST as stored in Redis: the event name and the exact body."""

    event: str
    body: bytes


_job_encoder = msgspec.msgpack.Encoder()
_job_decoder = msgspec.msgpack.Decoder(Job)
_raw_list = msgspec.json.Decoder(list[msgspec.Raw])
_object = msgspec.json.Decoder(dict[str, Any])
_json = msgspec.json.Encoder()


def encode_job(job: Job) -> bytes:
    return _job_encoder.encode(job)


def decode_job(data: bytes) -> Job:
    return _job_decoder.decode(data)


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    entry_id: str
    event_id: str
    event: str
    body: bytes


@dataclass(frozen=True, slots=True)
class PlannedJob:
    delivery_id: str
    job: Job
    event_ids: tuple[str, ...]


def parse_entry(entry_id: str, fields: dict[bytes, bytes] | None) -> OutboxEntry | None:
    """An outbox stream entry, or None when it lacks a field (it is then dropped)."""
    if not fields:
        return None
    event_id, event, body = fields.get(b"id"), fields.get(b"e"), fields.get(b"d")
    if not event_id or not event or body is None:
        return None
    return OutboxEntry(entry_id, event_id.decode(), event.decode(), body)


def plan_jobs(
    entries: Sequence[OutboxEntry], *, batch_size: int, compress_over: int
) -> list[PlannedJob]:
    """Group entries (in stream order) into jobs; duplicate event ids count once."""
    unique = list(_first_of_each_event_id(entries))
    jobs: list[PlannedJob] = []
    batched: dict[str, list[OutboxEntry]] = {}
    for entry in unique:
        if entry.event in BATCHED_EVENTS:
            batched.setdefault(entry.event, []).append(entry)
        else:
            body = entry.body
            if entry.event == MSG_OFFLINE:
                body = compress_to_uids(body, compress_over)
            jobs.append(
                PlannedJob(
                    entry.event_id, Job(event=entry.event, body=body), (entry.event_id,)
                )
            )
    for event, group in batched.items():
        jobs.extend(_batches(event, group, batch_size))
    return jobs


def _first_of_each_event_id(entries: Iterable[OutboxEntry]) -> Iterable[OutboxEntry]:
    seen: set[str] = set()
    for entry in entries:
        if entry.event_id not in seen:
            seen.add(entry.event_id)
            yield entry


def _batches(
    event: str, entries: Sequence[OutboxEntry], batch_size: int
) -> Iterable[PlannedJob]:
    """Chunks of at most ``batch_size`` elements; an entry is never split, so an
    entry that alone holds more elements becomes a batch of its own."""
    chunk: list[OutboxEntry] = []
    elements: list[msgspec.Raw] = []
    for entry in entries:
        items = batch_elements(entry.body)
        if chunk and len(elements) + len(items) > batch_size:
            yield _batch_job(event, chunk, elements)
            chunk, elements = [], []
        chunk.append(entry)
        elements.extend(items)
    if chunk:
        yield _batch_job(event, chunk, elements)


def _batch_job(
    event: str, chunk: Sequence[OutboxEntry], elements: list[msgspec.Raw]
) -> PlannedJob:
    body = _json.encode(elements)
    return PlannedJob(
        batch_id(event, chunk[0].entry_id),
        Job(event=event, body=body),
        tuple(entry.event_id for entry in chunk),
    )


def batch_id(event: str, first_entry_id: str) -> str:
    return f"{event}:{first_entry_id}"


def batch_elements(body: bytes) -> list[msgspec.Raw]:
    """A batched event's body is one JSON value, or an array whose items are spliced
    into the batch (a producer may queue several presence lines at once)."""
    if body.lstrip()[:1] == b"[":
        return _raw_list.decode(body)
    return [msgspec.Raw(body)]


def compress_to_uids(body: bytes, compress_over: int) -> bytes:
    """WuKongIM's ``compress_to_uids``: a ``to_uids`` list longer than
    ``compress_over`` travels as base64(gzip(JSON array)), with ``compress: "gzip"``
    and an empty ``to_uids``. 0 disables compression."""
    if compress_over <= 0 or b'"to_uids"' not in body:
        return body
    message = _object.decode(body)
    to_uids = message.get("to_uids")
    if not isinstance(to_uids, list) or len(to_uids) <= compress_over:
        return body
    packed = gzip.compress(_json.encode(to_uids), mtime=0)
    message["to_uids"] = []
    message["compress"] = "gzip"
    message["compress_to_uids"] = base64.b64encode(packed).decode()
    return _json.encode(message)


def uncompress_to_uids(value: str) -> list[str]:
    """What a receiver does with ``compress_to_uids`` (used by the tests)."""
    uids: list[str] = msgspec.json.decode(gzip.decompress(base64.b64decode(value)))
    return uids
