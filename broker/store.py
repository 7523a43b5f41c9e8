"""Redis I/O for channels and messages. Replies are narrowed to typed values here."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from broker.batching import TickBatcher
from broker.durability import FsyncGate
from broker.keys import ChannelKeys, Keys
from broker.protocol import LiveMessage, StoredMessage
from broker.scripts import (
    AppendOutcome,
    AppendStatus,
    Scripts,
    append_call,
    parse_append,
)

# Queues one read command on a pipeline (see Store._read).
QueueRead = Callable[[Pipeline], object]

# One pipeline of each kind in flight per process: calls that arrive meanwhile share
# the next one (see batching.py), so a busy process pays the system calls and the
# wake-ups of Redis once per batch rather than per call.
APPENDS_IN_FLIGHT = 1
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


@dataclass(frozen=True, slots=True)
class LogEntry:
    seq: int
    message: StoredMessage


def entry_seq(entry_id: Any) -> int:
    """The seq of a channel log entry id ``<seq>-0``."""
    return int(bytes(entry_id).split(b"-", 1)[0])


def _entries(reply: Any) -> list[LogEntry]:
    return [
        LogEntry(entry_seq(entry_id), decode_message(fields[b"m"]))
        for entry_id, fields in reply
    ]


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
        self._appends: TickBatcher[tuple[list[str], list[Any]], Any] = TickBatcher(
            self.scripts.append_batch, max_in_flight=APPENDS_IN_FLIGHT
        )
        self._reads: TickBatcher[QueueRead, Any] = TickBatcher(
            self._run_reads, max_in_flight=READS_IN_FLIGHT
        )
        # Strict durability: appends are acknowledged only once fsynced.
        self.gate = gate or FsyncGate()
        self.retention = retention  # log entries kept per channel; 0 = all

    async def _read(self, queue: QueueRead) -> Any:
        """One read command; concurrent reads of a loop tick share a pipeline."""
        return await self._reads.submit(queue)

    async def _run_reads(self, batch: list[QueueRead]) -> list[Any]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for queue in batch:
                queue(pipe)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
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
    ) -> AppendOutcome:
        """Store ``message``; with ``check_uid`` the script also refuses that client
        sender unless he may send into the channel (sender_check.lua)."""
        args = self._append_args(
            message,
            dedupe_ttl=dedupe_ttl,
            digest=digest,
            new_epoch=new_epoch,
            origin_conn=origin_conn,
        )
        args["check_uid"] = check_uid
        if self.gate.waits:
            return (await self._append_fsynced([args]))[0]
        # Concurrent sends share one pipeline per loop tick (see batching.py).
        return parse_append(await self._appends.submit(append_call(**args)))

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
            self._append_args(
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
            for args in batch:
                await self.scripts.append(append_call(**args), client=pipe)
            replies = await pipe.execute()
        return [parse_append(reply) for reply in replies]

    async def _append_fsynced(self, batch: list[dict[str, Any]]) -> list[AppendOutcome]:
        """Appends then ``WAITAOF 1 0 t`` on the same connection (one pipeline), so
        the wait covers these writes; acknowledged only if fsynced (strict mode)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for args in batch:
                await self.scripts.append(append_call(**args), client=pipe)
            pipe.execute_command("WAITAOF", 1, 0, self.gate.timeout_ms)
            replies = await pipe.execute(raise_on_error=False)
        for reply in replies[:-1]:
            if isinstance(reply, Exception):
                raise reply
        self.gate.check(replies[-1])
        return [parse_append(reply) for reply in replies[:-1]]

    def _append_args(
        self,
        message: StoredMessage,
        *,
        dedupe_ttl: int,
        digest: str,
        new_epoch: str,
        origin_conn: str,
    ) -> dict[str, Any]:
        channel = self.keys.channel(message.channel_type, message.channel_id)
        return {
            "channel": channel,
            "dispatch": self.keys.dispatch(channel.shard),
            "dedupe": self.keys.dedupe(
                message.channel_type,
                message.channel_id,
                message.from_uid,
                message.client_msg_no,
            ),
            "message": encode_message(message),
            "red_dot": bool(message.red_dot),
            "dedupe_ttl": dedupe_ttl,
            "message_id": message.message_id,
            "client_msg_no": message.client_msg_no,
            "digest": digest,
            "new_epoch": new_epoch,
            "now_ms": message.timestamp_ms,
            "origin_conn": origin_conn,
            "retention": self.retention,
        }

    async def publish_live(self, live: LiveMessage) -> int:
        """Publish a transient or command message on its shard's live channel."""
        shard = self.keys.shard(live.message.channel_type, live.message.channel_id)
        receivers: int = await self.redis.publish(self.keys.live(shard), _encode(live))
        return receivers

    # -- reads ----------------------------------------------------------------------
    async def head(self, channel: ChannelKeys) -> ChannelHead:
        seq, epoch = await self._read(lambda p: p.hmget(channel.meta, ["seq", "epoch"]))
        return ChannelHead(int(seq or 0), _str(epoch))

    async def read_range(
        self, channel: ChannelKeys, first: int, last: int, count: int
    ) -> list[LogEntry]:
        """Entries with ``first <= seq <= last``, ascending, at most ``count``."""
        if first > last or count <= 0:
            return []
        reply = await self._read(
            lambda p: p.xrange(channel.log, f"{first}-0", f"{last}-0", count=count)
        )
        return _entries(reply)

    async def read_newest(
        self, channel: ChannelKeys, first: int, last: int, count: int
    ) -> list[LogEntry]:
        """The newest ``count`` entries in ``first..last``, ascending."""
        if first > last or count <= 0:
            return []
        reply = await self._read(
            lambda p: p.xrevrange(channel.log, f"{last}-0", f"{first}-0", count=count)
        )
        return _entries(reversed(reply or []))

    async def first_seq(self, channel: ChannelKeys) -> int:
        """The oldest seq still kept (retention may have removed older ones)."""
        reply = await self._read(lambda p: p.xrange(channel.log, "-", "+", count=1))
        return entry_seq(reply[0][0]) if reply else 0

    async def read_seqs(
        self, channel: ChannelKeys, seqs: Iterable[int]
    ) -> list[LogEntry]:
        wanted = sorted({s for s in seqs if s > 0})
        if not wanted:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for seq in wanted:
                pipe.xrange(channel.log, f"{seq}-0", f"{seq}-0")  # type: ignore[unused-awaitable]
            replies = await pipe.execute()
        return [entry for reply in replies for entry in _entries(reply)]

    async def seqs_by_index(
        self, channel: ChannelKeys, fields: Sequence[str]
    ) -> list[int]:
        """Seqs recorded in the lookup index (``i<id>`` / ``c<client_msg_no>``)."""
        if not fields:
            return []
        values = await self._read(lambda p: p.hmget(channel.index, list(fields)))
        return [int(v) for v in values if v is not None]
