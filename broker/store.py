"""Redis I/O for channels and messages. Replies are narrowed to typed values here."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from broker.append_pack import AppendPacker
from broker.batching import TickBatcher
from broker.durability import FsyncGate
from broker.keys import ChannelKeys, Keys
from broker.protocol import LiveMessage, StoredMessage
from broker.redis_batch import pack, run_packed
from broker.scripts import (
    AppendOutcome,
    AppendStatus,
    Scripts,
    append_call,
    parse_append,
)

# One pipeline of each kind in flight per process: calls that arrive meanwhile share
# the next one (see batching.py), so a busy process pays the system calls and the
# wake-ups of Redis once per batch rather than per call.
APPENDS_IN_FLIGHT = 1
# The append script's dedupe window that skips the client_msg_no lookup.
NO_LOOKUP = 0
# A packed append, and how to pack it again for a retry (None: as it is).
PendingAppend = tuple[bytes, Callable[[], bytes] | None]
READS_IN_FLIGHT = 1

_encode = msgspec.msgpack.Encoder().encode
_decode_message = msgspec.msgpack.Decoder(StoredMessage).decode


def encode_message(message: StoredMessage) -> bytes:
    return _encode(message)


def decode_message(data: bytes) -> StoredMessage:
    return _decode_message(data)


@dataclass(frozen=True, slots=True)
class ChannelHead:
    last_seq: int
    epoch: str


class LogEntry(msgspec.Struct, frozen=True):
    # A Struct, not a dataclass: made per message read (5x cheaper to create).
    seq: int
    message: StoredMessage


def entry_seq(entry_id: Any) -> int:
    """The seq of a channel log entry id ``<seq>-0``."""
    return int(bytes(entry_id).split(b"-", 1)[0])


def raw_entry_seq(entry_id: bytes) -> int:
    """:func:`entry_seq` of an id as hiredis returns it (bytes)."""
    return int(entry_id[: entry_id.index(b"-")])


def message_field(fields: list[bytes]) -> bytes:
    """The ``m`` value of an entry's flat ``[field, value, ...]`` list."""
    if fields[0] == b"m":  # the only field channel logs have
        return fields[1]
    return fields[fields.index(b"m") + 1]


class RawEntry(msgspec.Struct, frozen=True):
    """A log entry before decoding: its seq and the stored message bytes."""

    seq: int
    data: bytes


def _raw_entries(reply: Any) -> list[RawEntry]:
    """Entries of a raw XRANGE/XREVRANGE reply (see redis_batch.py)."""
    return [
        RawEntry(raw_entry_seq(entry_id), message_field(fields))
        for entry_id, fields in reply
    ]


def _entries(reply: Any) -> list[LogEntry]:
    return [
        LogEntry(raw_entry_seq(entry_id), _decode_message(message_field(fields)))
        for entry_id, fields in reply
    ]


def decode_entries(raw: Sequence[RawEntry]) -> list[LogEntry]:
    return [LogEntry(e.seq, _decode_message(e.data)) for e in raw]


def _message_args(
    message: StoredMessage, digest: str, new_epoch: str
) -> dict[str, Any]:
    """The append script's per-message arguments, for both ways of packing it."""
    return {
        "message": _encode(message),
        "red_dot": bool(message.red_dot),
        "message_id": message.message_id,
        "client_msg_no": message.client_msg_no,
        "from_uid": message.from_uid,
        "digest": digest,
        "new_epoch": new_epoch,
        "now_ms": message.timestamp_ms,
    }


def _str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


class Store:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        gate: FsyncGate | None = None,
        *,
        retention: int = 0,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.scripts = Scripts(redis)
        self._appends: TickBatcher[PendingAppend, Any] = TickBatcher(
            self._run_appends, max_in_flight=APPENDS_IN_FLIGHT
        )
        self._reads: TickBatcher[bytes, Any] = TickBatcher(
            self._run_reads, max_in_flight=READS_IN_FLIGHT
        )
        # Strict durability: appends are acknowledged only once fsynced.
        self.gate = gate or FsyncGate()
        self.retention = retention  # log entries kept per channel; 0 = all
        self._packer = AppendPacker(self.scripts.append_script.sha, keys, retention)

    async def _read(self, *command: str | int) -> Any:
        """One read command, raw reply; concurrent reads share a batch."""
        return await self._reads.submit(pack(*command))

    async def _run_reads(self, batch: list[bytes]) -> list[Any]:
        return await run_packed(self.redis, batch)

    async def _run_appends(self, batch: list[PendingAppend]) -> list[Any]:
        """EVALSHA of each packed append.

        A connection that breaks during the batch may have broken after Redis ran
        it, so the batch goes again with every append looking its client_msg_no
        up: one that ran is answered as the duplicate it is (its first seq), not
        stored twice. Appends refused with NOSCRIPT did not run; they go again
        once the script is loaded."""
        commands = [first for first, _ in batch]
        try:
            replies = await run_packed(self.redis, commands, retry=False)
        except (RedisConnectionError, RedisTimeoutError):
            commands = [first if again is None else again() for first, again in batch]
            replies = await run_packed(self.redis, commands)
        missing = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
        if missing:
            await self.redis.script_load(self.scripts.append_script.script)
            again_replies = await run_packed(self.redis, [commands[i] for i in missing])
            for i, reply in zip(missing, again_replies, strict=True):
                replies[i] = reply
        return replies

    # -- writes ---------------------------------------------------------------------
    async def append(
        self,
        message: StoredMessage,
        *,
        dedupe_ttl: int,
        digest: str,
        new_epoch: str,
        origin_conn: str = "",
        check_uid: str = "",
        made_client_msg_no: bool = False,
    ) -> AppendOutcome:
        """Store ``message``; with ``check_uid`` the script also refuses that client
        sender unless he may send into the channel (sender_check.lua).
        ``made_client_msg_no``: the server made the message's client_msg_no, so no
        earlier send can have it."""
        if self.gate.waits:
            call = self._append_call(
                message,
                dedupe_ttl=dedupe_ttl,
                digest=digest,
                new_epoch=new_epoch,
                origin_conn=origin_conn,
                check_uid=check_uid,
            )
            return (await self._append_fsynced([call]))[0]
        args = _message_args(message, digest, new_epoch)

        def packed(ttl: int) -> bytes:
            return self._packer.pack(
                channel_type=message.channel_type,
                channel_id=message.channel_id,
                **args,
                dedupe_ttl=ttl,
                origin_conn=origin_conn,
                check_uid=check_uid,
            )

        if made_client_msg_no:
            # A client_msg_no the server made is new: the first try skips the
            # lookup (one index bucket per epoch of the channel). A retry must not
            # skip it: the first try may have run (see _run_appends).
            pending: PendingAppend = (packed(NO_LOOKUP), lambda: packed(dedupe_ttl))
        else:
            pending = (packed(dedupe_ttl), None)
        # Concurrent sends share one batch (see batching.py).
        return parse_append(await self._appends.submit(pending))

    async def refusal(
        self, message: StoredMessage, check_uid: str
    ) -> AppendOutcome | None:
        """The checks of ``append`` without storing (for transient and commands):
        None when the message may be sent, else the refusal."""
        channel = self.keys.channel(message.channel_type, message.channel_id)
        status = await self.scripts.permit(channel=channel, check_uid=check_uid)
        return AppendOutcome(AppendStatus(status)) if status else None

    async def append_many(
        self,
        messages: Sequence[StoredMessage],
        *,
        dedupe_ttl: int,
        digests: Sequence[str],
        new_epoch: str,
    ) -> list[AppendOutcome]:
        """Append several messages (to any channels) in one round trip."""
        batch = [
            self._append_call(
                message,
                dedupe_ttl=dedupe_ttl,
                digest=digest,
                new_epoch=new_epoch,
                origin_conn="",
            )
            for message, digest in zip(messages, digests, strict=True)
        ]
        if self.gate.waits:
            return await self._append_fsynced(batch)
        async with self.redis.pipeline(transaction=False) as pipe:
            for call in batch:
                await self.scripts.append(call, client=pipe)
            replies = await pipe.execute()
        return [parse_append(reply) for reply in replies]

    async def _append_fsynced(
        self, batch: list[tuple[list[str], list[Any]]]
    ) -> list[AppendOutcome]:
        """Appends then ``WAITAOF 1 0 t`` on the same connection (one pipeline), so
        the wait covers these writes; acknowledged only if fsynced (strict mode)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for call in batch:
                await self.scripts.append(call, client=pipe)
            pipe.execute_command("WAITAOF", 1, 0, self.gate.timeout_ms)
            replies = await pipe.execute(raise_on_error=False)
        for reply in replies[:-1]:
            if isinstance(reply, Exception):
                raise reply
        self.gate.check(replies[-1])
        return [parse_append(reply) for reply in replies[:-1]]

    def _append_call(
        self,
        message: StoredMessage,
        *,
        dedupe_ttl: int,
        digest: str,
        new_epoch: str,
        origin_conn: str,
        check_uid: str = "",
    ) -> tuple[list[str], list[Any]]:
        """The append script's KEYS and ARGV for ``message``."""
        keys = self.keys
        channel = keys.channel(message.channel_type, message.channel_id)
        return append_call(
            channel=channel,
            dispatch=keys.dispatch(channel.shard),
            **_message_args(message, digest, new_epoch),
            dedupe_ttl=dedupe_ttl,
            origin_conn=origin_conn,
            check_uid=check_uid,
            retention=self.retention,
        )

    async def publish_live(self, live: LiveMessage) -> int:
        """Publish a transient or command message on its shard's live channel."""
        shard = self.keys.shard(live.message.channel_type, live.message.channel_id)
        receivers: int = await self.redis.publish(self.keys.live(shard), _encode(live))
        return receivers

    # -- reads ----------------------------------------------------------------------
    async def head(self, channel: ChannelKeys) -> ChannelHead:
        seq, epoch = await self._read("HMGET", channel.meta, "seq", "epoch")
        return ChannelHead(int(seq or 0), _str(epoch))

    async def read_range(
        self, channel: ChannelKeys, first: int, last: int, count: int
    ) -> list[LogEntry]:
        """Entries with ``first <= seq <= last``, ascending, at most ``count``."""
        return decode_entries(await self.read_range_raw(channel, first, last, count))

    async def read_range_raw(
        self, channel: ChannelKeys, first: int, last: int, count: int
    ) -> list[RawEntry]:
        if first > last or count <= 0:
            return []
        reply = await self._read(
            "XRANGE", channel.log, f"{first}-0", f"{last}-0", "COUNT", count
        )
        return _raw_entries(reply)

    async def read_newest(
        self, channel: ChannelKeys, first: int, last: int, count: int
    ) -> list[LogEntry]:
        """The newest ``count`` entries in ``first..last``, ascending."""
        return decode_entries(await self.read_newest_raw(channel, first, last, count))

    async def read_newest_raw(
        self, channel: ChannelKeys, first: int, last: int, count: int
    ) -> list[RawEntry]:
        if first > last or count <= 0:
            return []
        reply = await self._read(
            "XREVRANGE", channel.log, f"{last}-0", f"{first}-0", "COUNT", count
        )
        return _raw_entries(reversed(reply or []))

    async def first_seq(self, channel: ChannelKeys) -> int:
        """The oldest seq still kept (retention may have removed older ones)."""
        reply = await self._read("XRANGE", channel.log, "-", "+", "COUNT", 1)
        return raw_entry_seq(reply[0][0]) if reply else 0

    async def read_seqs(
        self, channel: ChannelKeys, seqs: Iterable[int]
    ) -> list[LogEntry]:
        wanted = sorted({s for s in seqs if s > 0})
        if not wanted:
            return []
        replies = await run_packed(
            self.redis,
            [pack("XRANGE", channel.log, f"{seq}-0", f"{seq}-0") for seq in wanted],
        )
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return [entry for reply in replies for entry in _entries(reply)]
