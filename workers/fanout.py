"""Side effects of persisted and live messages (DESIGN §5).

Dispatch entries name a message (seq, channel, sender, time, origin); that is all
the conversation bookkeeping needs. The message itself is read from the channel
log, one XRANGE per channel and batch, only for channels with a recipient online
or when webhooks are on. An entry whose log entry is gone (retention, channel
deleted) is still counted in the conversations but has nothing left to deliver.

Per batch of dispatch entries: recipients → conversation bookkeeping (small
channels: every recipient; large channels: only the sender) → one PUBLISH per api
node holding recipients → webhook outbox. Every effect is a max, a ZADD GT, a
deterministic event id or a frame the gateway de-duplicates by seq, and the
channel's ``fanned`` mark (``<epoch>:<seq>`` in meta) skips entries already done,
so redelivery changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from broker.channels import SYSTEM_UID
from broker.conversation_rules import (
    conv_field,
    has_conversations,
    is_large,
)
from broker.conversation_scripts import NO_CREATE, ConversationScripts
from broker.gateway.presence import STALE_BEATS
from broker.keys import Keys
from broker.protocol import LiveMessage, StoredMessage
from broker.settings import Settings
from broker.store import decode_message
from broker.webhook_outbox import enqueue_event
from workers import events
from workers.delivery import Presence, delivery_frame, group_by_node
from workers.packed import PackedBatch, bulk
from workers.recipients import (
    ChannelFacts,
    MemberCache,
    is_person,
    person_recipients,
)

ChannelRef = tuple[int, str]
_decode_live = msgspec.msgpack.Decoder(LiveMessage).decode


@dataclass(frozen=True, slots=True)
class DispatchRef:
    """One dispatch entry as written by lua/append.lua: which message to fan out."""

    entry_id: bytes
    seq: int
    channel_type: int
    channel_id: str
    from_uid: str
    timestamp_ms: int
    origin_conn: str


@dataclass(frozen=True, slots=True)
class DispatchEntry:
    """A dispatch entry with its message, read from the channel log."""

    entry_id: bytes
    seq: int
    message: StoredMessage
    origin_conn: str


ENTRY_FIELDS = [b"s", b"t", b"c", b"f", b"ts", b"o"]  # as lua/append.lua writes them


def parse_entry(entry_id: Any, fields: Sequence[bytes]) -> DispatchRef:
    """A dispatch entry from its flat field list ``[name, value, ...]``."""
    if fields[0::2] == ENTRY_FIELDS:
        seq, channel_type, channel_id, from_uid, ms, origin = fields[1::2]
    else:  # written by something else (a test, an operator): go by name
        named = dict(zip(fields[0::2], fields[1::2], strict=True))
        seq, channel_type, channel_id = named[b"s"], named[b"t"], named[b"c"]
        from_uid, ms, origin = named[b"f"], named[b"ts"], named.get(b"o", b"")
    return DispatchRef(
        bytes(entry_id),
        int(seq),
        int(channel_type),
        channel_id.decode(),
        from_uid.decode(),
        int(ms),
        origin.decode(),
    )


def decode_live(data: bytes) -> LiveMessage:
    return _decode_live(data)


@dataclass(frozen=True, slots=True)
class ChannelWork:
    """One channel's not-yet-fanned entries of a batch, with its recipients."""

    channel_type: int
    channel_id: str
    entries: list[DispatchRef]
    recipients: frozenset[str]
    large: bool
    epoch: str


@dataclass(frozen=True, slots=True)
class ConvUpdate:
    activity_ms: int = 0
    own_seq: int = 0
    create_read: int = NO_CREATE

    def merge(self, other: ConvUpdate) -> ConvUpdate:
        return ConvUpdate(
            max(self.activity_ms, other.activity_ms),
            max(self.own_seq, other.own_seq),
            max(self.create_read, other.create_read),
        )


def group_by_channel(
    refs: Iterable[DispatchRef],
) -> dict[ChannelRef, list[DispatchRef]]:
    """Entries per channel, keeping seq order (dispatch order is seq order)."""
    channels: dict[ChannelRef, list[DispatchRef]] = {}
    for ref in refs:
        channels.setdefault((ref.channel_type, ref.channel_id), []).append(ref)
    return channels


def seq_span(refs: Sequence[DispatchRef]) -> tuple[int, int]:
    """The smallest and largest seq of a channel's entries."""
    seqs = [r.seq for r in refs]
    return min(seqs), max(seqs)


def log_messages(reply: Any) -> dict[int, StoredMessage]:
    """seq → message of an unparsed XRANGE reply on a channel log (the only
    field of a log entry is ``m``)."""
    return {
        int(bytes(entry_id).split(b"-", 1)[0]): decode_message(fields[1])
        for entry_id, fields in reply
    }


def fanned_seq(mark: bytes | None, epoch: str) -> int:
    """The seq up to which a channel was fanned out in its current epoch."""
    if not mark:
        return 0
    mark_epoch, _, seq = mark.decode().rpartition(":")
    return int(seq) if mark_epoch == epoch else 0


@dataclass(frozen=True, slots=True)
class ChannelActivity:
    """What a run of messages did to a channel, as conversation bookkeeping needs."""

    channel_type: int
    channel_id: str
    recipients: frozenset[str]
    large: bool
    last_ms: int
    own: dict[str, int]  # sender → its highest seq
    create_read: int  # read_seq of a missing recipient record; NO_CREATE: none


def activity_of(work: ChannelWork) -> ChannelActivity:
    own: dict[str, int] = {}
    for e in work.entries:
        sender = e.from_uid
        if sender != SYSTEM_UID:
            own[sender] = max(own.get(sender, 0), e.seq)
    return ChannelActivity(
        channel_type=work.channel_type,
        channel_id=work.channel_id,
        recipients=work.recipients,
        large=work.large,
        last_ms=max(e.timestamp_ms for e in work.entries),
        own=own,
        # Person conversations start at their first message (reference §4).
        create_read=0 if is_person(work.channel_type) else NO_CREATE,
    )


def plan_conversations(
    activities: Iterable[ChannelActivity],
) -> dict[tuple[str, str], ConvUpdate]:
    """(uid, conv field) → the merged update. Pure.

    Small channels touch every recipient; large channels only the sender's
    own_last_seq (their conversation lists are merged at read time).
    """
    plan: dict[tuple[str, str], ConvUpdate] = {}

    def add(uid: str, field: str, update: ConvUpdate) -> None:
        key = (uid, field)
        plan[key] = plan[key].merge(update) if key in plan else update

    for a in activities:
        if not has_conversations(a.channel_type):
            continue
        field = conv_field(a.channel_type, a.channel_id)
        if not a.large:
            for uid in a.recipients:
                add(uid, field, ConvUpdate(a.last_ms, a.own.get(uid, 0), a.create_read))
        for uid, seq in a.own.items():
            create = a.create_read if uid in a.recipients else NO_CREATE
            add(uid, field, ConvUpdate(0, seq, create))
    return plan


class Fanout:
    def __init__(self, redis: Redis, keys: Keys, settings: Settings) -> None:
        self.redis = redis  # the hot-path client (workers/rawreplies.py)
        self.keys = keys
        self.scripts = ConversationScripts(redis, keys)
        self.members = MemberCache()
        # One rule for "dead node" everywhere: the gateway's (broker.gateway.presence).
        self.presence = Presence(redis, keys, STALE_BEATS * settings.node_heartbeat_ms)
        self.webhooks_on = bool(settings.webhook_url)
        self.large_threshold = settings.large_channel
        self._touch_loaded = False  # touches are bare EVALSHA (_touch)
        # "EVALSHA <conv_touch sha> 2": the packed start of every touch.
        self._touch_head = b"*9\r\n" + b"".join(
            bulk(v) for v in (b"EVALSHA", self.scripts.touch_sha, 2)
        )

    async def process(self, refs: Sequence[DispatchRef]) -> None:
        """All side effects of a batch; the caller acknowledges afterwards."""
        channels = group_by_channel(refs)
        wanted = list(channels)
        # One round trip for the channel facts, the presence changes and, for
        # groups (where someone is usually online), the logged messages.
        batch = PackedBatch()
        self._queue_facts(batch, wanted)
        early = [ref for ref in wanted if not is_person(ref[0])]
        for ref in early:
            self._queue_log_read(batch, ref, channels[ref])
        cursor = self.presence.queue_changes(batch)
        replies = iter(await batch.run(self.redis))
        facts = self._parse_facts(wanted, replies)
        messages = {ref: log_messages(_checked(next(replies))) for ref in early}
        refreshed = cursor is not None and self.presence.apply_changes(
            cursor, next(replies), next(replies)
        )
        work: list[ChannelWork] = []
        for ref, channel_refs in channels.items():
            fact = facts[ref]
            done = fanned_seq(fact.fanned, fact.epoch)
            todo = [r for r in channel_refs if r.seq > done]
            if not todo:
                continue
            recipients = await self._recipients(ref, fact)
            large = not is_person(ref[0]) and is_large(
                fact.large_flag, fact.member_count, self.large_threshold
            )
            work.append(
                ChannelWork(ref[0], ref[1], todo, recipients, large, fact.epoch)
            )
        if not work:
            return
        online = await self.presence.online(
            frozenset().union(*(w.recipients for w in work)), refreshed=refreshed
        )
        routes = [group_by_node(w.recipients, online) for w in work]
        # Only a delivery or a webhook event needs the message itself.
        messages.update(
            await self._messages(
                [
                    w
                    for w, by_node in zip(work, routes, strict=True)
                    if (by_node or self.webhooks_on)
                    and (w.channel_type, w.channel_id) not in messages
                ]
            )
        )
        # Deliveries (and webhook events) first: a recipient's latency does not
        # wait for the conversation bookkeeping of every member.
        async with self.redis.pipeline(transaction=False) as pipe:
            queued = False
            for w, by_node in zip(work, routes, strict=True):
                stored = messages.get((w.channel_type, w.channel_id), {})
                offline = (
                    sorted(w.recipients.difference(online)) if self.webhooks_on else []
                )
                for r in w.entries:
                    message = stored.get(r.seq)
                    if message is None:
                        continue
                    self._queue_delivery(pipe, by_node, r.seq, message, r.origin_conn)
                    self._queue_events(pipe, r.seq, message, offline)
                    queued = queued or bool(by_node) or self.webhooks_on
            if queued:
                await pipe.execute()
        await self._touch(list(plan_conversations(map(activity_of, work)).items()))
        # Only after the touches: the mark makes a redelivery skip them.
        async with self.redis.pipeline(transaction=False) as pipe:
            for w in work:
                meta = self.keys.channel(w.channel_type, w.channel_id).meta
                pipe.hset(meta, "fanned", f"{w.epoch}:{w.entries[-1].seq}")  # type: ignore[unused-awaitable]
            await pipe.execute()

    async def _touch(self, plan: Sequence[tuple[tuple[str, str], ConvUpdate]]) -> None:
        """Every conversation touch of a batch in one round trip (bare EVALSHA,
        packed here: a group message touches every member's record). Touches
        refused with NOSCRIPT (Redis restarted or flushed its scripts) did not
        run: load the script and run them again (each touch is idempotent)."""
        if not plan:
            return
        if not self._touch_loaded:
            await self.scripts.ensure_loaded()
            self._touch_loaded = True
        replies = await self._touch_batch(plan).run(self.redis)
        missed = [
            step
            for step, reply in zip(plan, replies, strict=True)
            if isinstance(reply, NoScriptError)
        ]
        failed = [
            r
            for r in replies
            if isinstance(r, Exception) and not isinstance(r, NoScriptError)
        ]
        if missed:
            await self.scripts.ensure_loaded()
            replies = await self._touch_batch(missed).run(self.redis)
            failed += [r for r in replies if isinstance(r, Exception)]
        if failed:
            raise failed[0]

    def _touch_batch(
        self, plan: Sequence[tuple[tuple[str, str], ConvUpdate]]
    ) -> PackedBatch:
        """The packed touches; the arguments after the keys are shared by every
        member a message touches alike, so they are packed once."""
        batch = PackedBatch()
        head = self._touch_head
        tails: dict[tuple[str, ConvUpdate], bytes] = {}
        for (uid, field), update in plan:
            tail = tails.get((field, update))
            if tail is None:
                tail = tails[(field, update)] = b"".join(
                    bulk(v)
                    for v in (
                        field,
                        update.activity_ms,
                        update.own_seq,
                        update.create_read,
                    )
                )
            batch.add_packed(
                head
                + bulk(self.keys.conversations(uid))
                + bulk(self.keys.recent(uid))
                + tail
            )
        return batch

    async def _messages(
        self, work: Sequence[ChannelWork]
    ) -> dict[ChannelRef, dict[int, StoredMessage]]:
        """The logged messages of ``work``'s entries: one XRANGE per channel."""
        if not work:
            return {}
        batch = PackedBatch()
        for w in work:
            self._queue_log_read(batch, (w.channel_type, w.channel_id), w.entries)
        replies = await batch.run(self.redis)
        return {
            (w.channel_type, w.channel_id): log_messages(_checked(reply))
            for w, reply in zip(work, replies, strict=True)
        }

    def _queue_log_read(
        self, batch: PackedBatch, ref: ChannelRef, entries: Sequence[DispatchRef]
    ) -> None:
        first, last = seq_span(entries)
        batch.add(
            b"XRANGE",
            self.keys.channel(*ref).log,
            f"{first}-0",
            f"{last}-0",
            b"COUNT",
            last - first + 1,
        )

    async def deliver_live(self, live: LiveMessage) -> None:
        """A transient or command message: online recipients only, seq 0."""
        message = live.message
        if live.to_uids is not None:
            recipients = frozenset(live.to_uids) - {SYSTEM_UID}
        else:
            ref = (message.channel_type, message.channel_id)
            facts = await self._facts([ref])
            recipients = await self._recipients(ref, facts[ref])
        online = await self.presence.online(recipients)
        by_node = group_by_node(recipients, online)
        if not by_node:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            self._queue_delivery(pipe, by_node, 0, message, live.origin_conn)
            await pipe.execute()

    def _queue_delivery(
        self,
        pipe: Any,
        by_node: Mapping[str, list[str]],
        seq: int,
        message: StoredMessage,
        origin_conn: str,
    ) -> None:
        for node, uids in by_node.items():
            pipe.publish(
                self.keys.node_channel(node),
                delivery_frame(uids, seq, message, origin_conn),
            )

    def _queue_events(
        self, pipe: Any, seq: int, message: StoredMessage, offline: list[str]
    ) -> None:
        if not self.webhooks_on:
            return  # nobody would drain the outbox
        enqueue_event(
            pipe,
            self.keys,
            events.notify_id(message),
            events.MSG_NOTIFY,
            events.notify_body(seq, message),
        )
        to_uids = [uid for uid in offline if uid != message.from_uid]
        if to_uids:
            enqueue_event(
                pipe,
                self.keys,
                events.offline_id(message),
                events.MSG_OFFLINE,
                events.offline_body(seq, message, to_uids),
            )

    async def _facts(
        self, refs: Iterable[ChannelRef]
    ) -> dict[ChannelRef, ChannelFacts]:
        wanted = list(refs)
        batch = PackedBatch()
        self._queue_facts(batch, wanted)
        return self._parse_facts(wanted, iter(await batch.run(self.redis)))

    def _queue_facts(self, batch: PackedBatch, refs: Sequence[ChannelRef]) -> None:
        for ref in refs:
            channel = self.keys.channel(*ref)
            batch.add(
                b"HMGET", channel.meta, b"members_ver", b"large", b"epoch", b"fanned"
            )
            if not is_person(ref[0]):  # person recipients come from the id
                batch.add(b"SCARD", channel.members)

    def _parse_facts(
        self, refs: Sequence[ChannelRef], replies: Iterator[Any]
    ) -> dict[ChannelRef, ChannelFacts]:
        facts: dict[ChannelRef, ChannelFacts] = {}
        for ref in refs:
            meta = _checked(next(replies))
            ver, large, epoch, fanned = meta
            facts[ref] = ChannelFacts(
                members_ver=ver,
                large_flag=large,
                member_count=0 if is_person(ref[0]) else int(_checked(next(replies))),
                epoch=epoch.decode() if isinstance(epoch, bytes) else "",
                fanned=fanned,
            )
        return facts

    async def _recipients(self, ref: ChannelRef, fact: ChannelFacts) -> frozenset[str]:
        channel_type, channel_id = ref
        if is_person(channel_type):
            return person_recipients(channel_id)
        cached = self.members.get(ref, fact.members_ver)
        if cached is not None:
            return cached
        raw = await self.redis.smembers(
            self.keys.channel(channel_type, channel_id).members
        )
        members = frozenset(_text(m) for m in raw) - {SYSTEM_UID}
        self.members.put(ref, fact.members_ver, members)
        return members


def _checked(reply: Any) -> Any:
    """A packed reply, or its error raised."""
    if isinstance(reply, Exception):
        raise reply
    return reply


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
