"""A Jepsen-style ledger of client operations and a checker of what Redis holds.

Every send a load generator makes is one ``Op`` (one attempt) with its outcome:
``ok`` (2xx with seq and message_id), ``fail`` (a definite refusal, 4xx) or
``unknown`` (5xx, timeout, connection lost: it may or may not be stored). Attempts
of one message share ``(channel, from_uid, client_msg_no)``: its identity.

The checker reads each channel's log (XRANGE) and meta, and optionally the per-user
projections (conversation hash, recent zset, badge bitmap) and webhook ids, and counts
violations. Every counter must be 0 (reliability-plan.md, "Harness").
"""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from broker.channels import ChannelType, person_channel_id
from broker.keys import Keys
from broker.protocol import StoredMessage

OK, FAIL, UNKNOWN = "ok", "fail", "unknown"
_decode = msgspec.msgpack.Decoder(StoredMessage).decode

Channel = tuple[int, str]  # (channel_type, storage channel id)
Identity = tuple[int, str, str, str]  # channel type, storage id, from_uid, cmn


@dataclass
class Op:
    op_id: int
    kind: str
    channel_type: int
    channel_id: str  # as sent (a person channel names the peer)
    from_uid: str
    client_msg_no: str
    red_dot: int = 1
    t_invoke: float = 0.0
    t_complete: float = 0.0
    outcome: str = UNKNOWN
    seq: int = 0
    message_id: int = 0
    code: int = 0

    @property
    def channel(self) -> Channel:
        return storage_channel(self.channel_type, self.channel_id, self.from_uid)

    @property
    def identity(self) -> Identity:
        ct, cid = self.channel
        return (ct, cid, self.from_uid, self.client_msg_no)


def storage_channel(channel_type: int, channel_id: str, from_uid: str) -> Channel:
    if channel_type == ChannelType.PERSON:
        return (channel_type, person_channel_id(from_uid, channel_id))
    return (channel_type, channel_id)


class Ledger:
    """Append-only list of ops; optionally mirrored to a JSONL file."""

    def __init__(self, path: Path | None = None) -> None:
        self.ops: list[Op] = []
        self.path = path
        self._ids = itertools.count(1)
        self.mark_reads: dict[tuple[str, Channel], int] = {}

    def invoke(
        self,
        channel_type: int,
        channel_id: str,
        from_uid: str,
        client_msg_no: str,
        *,
        red_dot: int = 1,
    ) -> Op:
        op = Op(
            next(self._ids),
            "send",
            channel_type,
            channel_id,
            from_uid,
            client_msg_no,
            red_dot=red_dot,
            t_invoke=time.time(),
        )
        self.ops.append(op)
        return op

    def complete(
        self, op: Op, outcome: str, *, seq: int = 0, message_id: int = 0, code: int = 0
    ) -> None:
        op.outcome, op.seq, op.message_id, op.code = outcome, seq, message_id, code
        op.t_complete = time.time()
        if self.path is not None:
            with self.path.open("a") as f:
                f.write(json.dumps(asdict(op)) + "\n")

    def mark_read(self, uid: str, channel: Channel, seq: int) -> None:
        """``uid`` read ``channel`` up to at least ``seq`` (a lower bound)."""
        key = (uid, channel)
        self.mark_reads[key] = max(seq, self.mark_reads.get(key, 0))

    @classmethod
    def load(cls, path: Path) -> Ledger:
        ledger = cls()
        for line in path.read_text().splitlines():
            ledger.ops.append(Op(**json.loads(line)))
        return ledger

    def channels(self) -> set[Channel]:
        return {op.channel for op in self.ops}

    def counts(self) -> Counter[str]:
        return Counter(op.outcome for op in self.ops)


@dataclass(frozen=True)
class Entry:
    seq: int
    message: StoredMessage


@dataclass
class ChannelState:
    epoch: str
    last_seq: int
    entries: list[Entry]

    @property
    def first_kept(self) -> int:
        return self.entries[0].seq if self.entries else self.last_seq + 1


@dataclass
class Report:
    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0
    gap: int = 0
    seq_reuse: int = 0
    retry_mismatch: int = 0  # a retry answered another seq/message_id than the first
    unread_mismatch: int = 0
    conv_mismatch: int = 0
    webhook_missing: int = 0
    webhook_dup_effects: int = 0
    client_lost: int = (
        0  # stored, but a member's client got it neither live nor by sync
    )
    # Not violations: figures that describe the run.
    acked: int = 0
    stored: int = 0
    unknown_stored: int = 0
    unknown_not_stored: int = 0
    trimmed: int = 0
    rows_checked: int = 0  # (member, channel) projections compared with the model
    lost_acked_at: list[float] = field(default_factory=list)  # ack times of lost ops
    details: list[str] = field(default_factory=list)

    VIOLATIONS = (
        "lost",
        "duplicated",
        "unexpected",
        "gap",
        "seq_reuse",
        "retry_mismatch",
        "unread_mismatch",
        "conv_mismatch",
        "webhook_missing",
        "webhook_dup_effects",
        "client_lost",
    )

    def violations(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.VIOLATIONS}

    @property
    def clean(self) -> bool:
        return not any(self.violations().values())

    def note(self, text: str) -> None:
        if len(self.details) < 50:
            self.details.append(text)

    def summary(self) -> str:
        figures = {
            k: getattr(self, k)
            for k in ("acked", "stored", "unknown_stored", "unknown_not_stored")
        }
        return f"violations={self.violations()} figures={figures} {self.details[:10]}"


async def read_channel(redis: Any, keys: Keys, channel: Channel) -> ChannelState:
    ck = keys.channel(*channel)
    seq, epoch = await redis.hmget(ck.meta, ["seq", "epoch"])
    entries: list[Entry] = []
    start = "-"
    while True:
        page = await redis.xrange(ck.log, start, "+", count=1000)
        for entry_id, fields in page:
            entries.append(
                Entry(int(bytes(entry_id).split(b"-")[0]), _decode(fields[b"m"]))
            )
        if len(page) < 1000:
            break
        start = "(" + bytes(page[-1][0]).decode()
    return ChannelState((epoch or b"").decode(), int(seq or 0), entries)


Snapshot = dict[tuple[Channel, str, int], int]  # (channel, epoch, seq) → message_id


def snapshot(states: Mapping[Channel, ChannelState]) -> Snapshot:
    return {
        (channel, state.epoch, e.seq): e.message.message_id
        for channel, state in states.items()
        for e in state.entries
    }


def check_log(
    ledger: Ledger,
    states: Mapping[Channel, ChannelState],
    *,
    before: Snapshot | None = None,
    extra_identities: Iterable[Identity] = (),
) -> Report:
    """Compare the ledger with the channel logs (lost, duplicated, unexpected, gap,
    seq_reuse, retry_mismatch)."""
    report = Report()
    attempts: dict[Identity, list[Op]] = defaultdict(list)
    for op in ledger.ops:
        attempts[op.identity].append(op)
    known = set(attempts) | set(extra_identities)

    stored: dict[Identity, list[tuple[Channel, Entry]]] = defaultdict(list)
    for channel, state in states.items():
        report.stored += len(state.entries)
        seqs = [e.seq for e in state.entries]
        if seqs != sorted(set(seqs)):
            report.gap += 1
            report.note(f"{channel}: seqs out of order")
        # Dense from the first kept seq to the meta's last seq.
        expected = set(range(state.first_kept, state.last_seq + 1))
        missing = expected - set(seqs)
        if missing or (seqs and seqs[-1] != state.last_seq):
            report.gap += len(missing) or 1
            report.note(f"{channel}: missing seqs {sorted(missing)[:5]}")
        report.trimmed += state.first_kept - 1
        for e in state.entries:
            m = e.message
            ident = (channel[0], channel[1], m.from_uid, m.client_msg_no)
            stored[ident].append((channel, e))
            if ident not in known:
                report.unexpected += 1
                report.note(f"unexpected {ident} at seq {e.seq}")

    for ident, copies in stored.items():
        if len(copies) > 1:
            report.duplicated += len(copies) - 1
            report.note(f"duplicated {ident}: seqs {[e.seq for _, e in copies]}")

    for ident, ops in attempts.items():
        oks = [op for op in ops if op.outcome == OK]
        acked = {(op.seq, op.message_id) for op in oks}
        if len(acked) > 1:
            report.retry_mismatch += len(acked) - 1
            report.note(f"retries of {ident} answered {sorted(acked)}")
        copies = stored.get(ident, [])
        if oks:
            report.acked += 1
            seq, message_id = oks[0].seq, oks[0].message_id
            channel = ident[:2]
            state = states.get((ident[0], ident[1]))
            if state is not None and seq < state.first_kept:
                continue  # removed by retention, reported as truncated by sync
            if not any(
                e.seq == seq and e.message.message_id == message_id for _, e in copies
            ):
                report.lost += 1
                report.lost_acked_at.append(oks[0].t_complete)
                report.note(f"lost {ident}: acked seq {seq} in {channel}")
        elif any(op.outcome == UNKNOWN for op in ops):
            if copies:
                report.unknown_stored += 1
            else:
                report.unknown_not_stored += 1
        elif copies:
            # Every attempt was refused (4xx), yet it is stored.
            report.unexpected += len(copies)
            report.note(f"refused but stored: {ident}")

    if before:
        now = snapshot(states)
        for key, message_id in before.items():
            if key in now and now[key] != message_id:
                report.seq_reuse += 1
                report.note(f"seq reused: {key}")
    return report


# -- projections (conversations, unread) -------------------------------------------
@dataclass(frozen=True)
class ConvRow:
    read_seq: int
    own_last_seq: int
    deleted_seq: int


def parse_conv(value: bytes | str) -> ConvRow:
    """``"<read_seq>,<own_last_seq>,<deleted_seq>"`` (design-notes, Conversations)."""
    text = value.decode() if isinstance(value, bytes) else value
    read, own, deleted = (int(x) for x in text.split(","))
    return ConvRow(read, own, deleted)


def conv_field(channel: Channel) -> str:
    return f"{channel[0]}:{channel[1]}"


def popcount_range(bitmap: bytes, first: int, last: int) -> int:
    """Set bits ``first..last`` (inclusive) of a Redis bitmap (bit 0: MSB, byte 0)."""
    total = 0
    for bit in range(max(first, 0), last + 1):
        byte = bit >> 3
        if byte < len(bitmap) and bitmap[byte] & (0x80 >> (bit & 7)):
            total += 1
    return total


def expected_unread(state: ChannelState, uid: str, read_seq: int) -> tuple[int, int]:
    """(unread, own_last_seq) of ``uid`` in a channel from its log (DESIGN §6)."""
    own = max((e.seq for e in state.entries if e.message.from_uid == uid), default=0)
    floor = max(read_seq, own)
    unread = sum(
        1
        for e in state.entries
        if e.seq > floor and e.message.from_uid != uid and e.message.red_dot
    )
    return unread, own


async def check_projections(
    redis: Any,
    keys: Keys,
    ledger: Ledger,
    states: Mapping[Channel, ChannelState],
    members: Mapping[Channel, Iterable[str]],
    report: Report,
) -> Report:
    """Per (member, channel): conversation row, recent entry and unread count.

    ``members`` gives the recipients of each checked channel (person channels: the
    two uids). Channels marked large keep no per-member rows and are not passed.
    """
    for channel, uids in members.items():
        state = states[channel]
        if not state.entries:
            continue
        badge = await redis.get(keys.channel(*channel).badge) or b""
        for uid in uids:
            row_raw = await redis.hget(keys.conversations(uid), conv_field(channel))
            in_recent = await redis.zscore(keys.recent(uid), conv_field(channel))
            model_read = ledger.mark_reads.get((uid, channel), 0)
            unread, own = expected_unread(state, uid, model_read)
            if row_raw is None:
                # A member with no row: fine only if nothing concerns them yet.
                if own or unread or model_read:
                    report.conv_mismatch += 1
                    report.note(f"no conversation row for {uid} in {channel}")
                continue
            row = parse_conv(row_raw)
            report.rows_checked += 1
            # A read marker set through the API lands at the channel's last seq at
            # that moment: the ledger knows a lower bound; it may never go back.
            if (
                row.own_last_seq != own
                or not model_read <= row.read_seq <= state.last_seq
                or in_recent is None
            ):
                report.conv_mismatch += 1
                report.note(f"{uid} {channel}: row {row}, model own={own}")
            # What users see: unread from the stored row and the badge bitmap, against
            # the count of red-dot messages from others after the row's floor.
            floor = max(row.read_seq, row.own_last_seq)
            actual = popcount_range(badge, floor + 1, state.last_seq)
            expected, _ = expected_unread(state, uid, row.read_seq)
            if actual != expected:
                report.unread_mismatch += 1
                report.note(f"{uid} {channel}: unread {actual}, model {expected}")
    return report


def check_webhooks(
    states: Mapping[Channel, ChannelState],
    received: Mapping[str, int],
    report: Report,
    *,
    prefix: str = "n-",
) -> Report:
    """Every stored message has its event id (``n-<message_id>``: msg.notify) among
    the ids the receiver saw; ``received`` maps id → times its effect was applied."""
    for state in states.values():
        for e in state.entries:
            if prefix + str(e.message.message_id) not in received:
                report.webhook_missing += 1
    report.webhook_dup_effects += sum(1 for n in received.values() if n > 1)
    return report


async def channel_members(
    redis: Any, keys: Keys, channels: Iterable[Channel]
) -> dict[Channel, list[str]]:
    """Recipients with per-member rows: the two parties of a person channel, the
    subscribers of any other channel; channels flagged large keep no rows and are
    left out (DESIGN: large channels)."""
    out: dict[Channel, list[str]] = {}
    for channel in channels:
        if channel[0] == ChannelType.PERSON:
            out[channel] = sorted(channel[1].split("@"))
            continue
        ck = keys.channel(*channel)
        if await redis.hget(ck.meta, "large") in (b"1", "1"):
            continue
        out[channel] = sorted(_text(m) for m in await redis.smembers(ck.members))
    return out


def check_client_views(
    states: Mapping[Channel, ChannelState],
    views: Mapping[str, Mapping[Channel, set[int]]],
    members: Mapping[Channel, Iterable[str]],
    report: Report,
) -> Report:
    """Every stored message of a channel reached each member's client (live, or
    by offset after a resync hint): ``views`` maps uid → channel → seqs held."""
    for channel, uids in members.items():
        state = states.get(channel)
        if state is None:
            continue
        stored = {e.seq for e in state.entries}
        for uid in uids:
            if uid not in views:
                continue  # no client of this uid in the run
            missing = stored - views[uid].get(channel, set())
            if missing:
                report.client_lost += len(missing)
                report.note(f"{uid} never got {channel} seqs {sorted(missing)[:5]}")
    return report


async def check(
    redis: Any,
    keys: Keys,
    ledger: Ledger,
    *,
    before: Snapshot | None = None,
    channels: Iterable[Channel] | None = None,
) -> tuple[Report, dict[Channel, ChannelState]]:
    """Read every channel the ledger touched and check the logs."""
    wanted = set(channels) if channels is not None else ledger.channels()
    states = {ch: await read_channel(redis, keys, ch) for ch in sorted(wanted)}
    return check_log(ledger, states, before=before), states


DISPATCH_GROUP = b"fanout"  # design-notes: the workers' consumer group


def _entry_id(value: bytes | str) -> tuple[int, int]:
    text = value.decode() if isinstance(value, bytes) else value
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


async def dispatch_drained(redis: Any, keys: Keys) -> bool:
    """True when every dispatch entry of every shard was delivered to the workers'
    group and acknowledged (PEL empty, nothing left after last-delivered-id)."""
    for shard in range(keys.shards):
        stream = keys.dispatch(shard)
        if not await redis.exists(stream):
            continue
        info = await redis.xinfo_stream(stream)
        last = info["last-generated-id"]
        if _entry_id(last) == (0, 0):
            continue
        groups = {_text(g["name"]): g for g in await redis.xinfo_groups(stream)}
        group = groups.get(DISPATCH_GROUP.decode())
        if group is None or group["pending"]:
            return False
        if _entry_id(group["last-delivered-id"]) < _entry_id(last):
            return False
    return True


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
