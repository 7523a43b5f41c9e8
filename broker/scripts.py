"""Lua scripts, one file per atomic operation, with typed async wrappers.

redis-py's Script runs EVALSHA and reloads the script on NOSCRIPT.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from importlib.resources import files
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from broker.append_pack import channel_keys
from broker.keys import ChannelKeys, IndexField, client_msg_no_field, id_field
from broker.protocol import StoredMessage

_decode_message = msgspec.msgpack.Decoder(StoredMessage).decode


def load(name: str, *preludes: str) -> str:
    """A script's source, after the shared Lua functions it uses (``preludes``)."""
    lua = files("broker") / "lua"
    parts = [(lua / f"{p}.lua").read_text() for p in (*preludes, name)]
    return "\n".join(parts)


class AppendStatus(Enum):
    STORED = 1
    DUPLICATE = 2
    BANNED = -19
    DISBANDED = -24
    # Refusals of a client sender (WuKongIM reason codes, negated).
    NOT_SUBSCRIBER = -3
    IN_BLACKLIST = -4
    NOT_IN_WHITELIST = -13
    SEND_BANNED = -25


class AppendOutcome(msgspec.Struct, frozen=True):
    # A Struct, not a dataclass: one is made per send (several times cheaper).
    status: AppendStatus
    seq: int = 0
    message_id: int = 0  # DUPLICATE: the id of the message stored first
    epoch: str = ""  # STORED: the channel's epoch
    # DUPLICATE: the caller's digest if the payload is the same, else "" (a 409).
    digest: str = ""


def append_source() -> str:
    """The append script with the shared functions it uses."""
    return load("append", "sender_check", "index", "msgpack_fields")


class Scripts:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.append_script: AsyncScript = redis.register_script(append_source())
        self._index_find: AsyncScript = redis.register_script(
            load("index_find", "index")
        )
        self._permit: AsyncScript = redis.register_script(
            load("permit", "sender_check")
        )
        self._members_add: AsyncScript = redis.register_script(load("members_add"))
        self._members_remove: AsyncScript = redis.register_script(
            load("members_remove")
        )
        self._channel_delete: AsyncScript = redis.register_script(
            load("channel_delete", "index")
        )
        self._list_set: AsyncScript = redis.register_script(load("list_set"))

    def registered(self) -> list[AsyncScript]:
        """Every script of this object (for the readiness check)."""
        return [v for v in vars(self).values() if isinstance(v, AsyncScript)]

    async def append(
        self, call: tuple[list[str], list[Any]], *, client: Any = None
    ) -> Any:
        """Run the append script for one :func:`append_call`; with ``client`` (a
        pipeline) only queue it."""
        keys, args = call
        return await self.append_script(keys=keys, args=args, client=client)

    async def permit(self, *, channel: ChannelKeys, check_uid: str) -> int:
        """0 if the sender may send now, else the negated WuKongIM reason code."""
        keys = [channel.meta, channel.members, channel.blacklist, channel.whitelist]
        return int(await self._permit(keys=keys, args=[check_uid]))

    async def index_find(
        self, *, channel: ChannelKeys, fields: list[IndexField]
    ) -> list[int]:
        """The seq each lookup-index field points at (0: none). A field may be a
        hash collision: check the log entry before trusting it."""
        if not fields:
            return []
        args: list[Any] = []
        for f in fields:
            args += [f.field, f.bucket_hash]
        reply = await self._index_find(keys=[channel.meta, channel.index], args=args)
        return [int(seq) for seq in reply]

    async def members_add(
        self, *, channel: ChannelKeys, uids: list[str], reset: bool
    ) -> MembersAdded:
        reply = await self._members_add(
            keys=[channel.meta, channel.members], args=[int(reset), *uids]
        )
        return MembersAdded(int(reply[0]), _texts(reply[1]), _texts(reply[2]))

    async def members_remove(
        self, *, channel: ChannelKeys, uids: list[str], remove_all: bool
    ) -> list[str]:
        """The uids that were members and are not any more."""
        reply = await self._members_remove(
            keys=[channel.meta, channel.members], args=[int(remove_all), *uids]
        )
        return _texts(reply)

    async def channel_delete(self, *, channel: ChannelKeys) -> list[str] | None:
        """The former members of the deleted channel; None if there was none."""
        reply = await self._channel_delete(
            keys=[
                channel.meta,
                channel.log,
                channel.members,
                channel.blacklist,
                channel.whitelist,
                channel.badge,
                channel.index,
            ]
        )
        return _texts(reply[1]) if int(reply[0]) == 1 else None

    async def list_set(self, *, key: str, uids: list[str]) -> int:
        return int(await self._list_set(keys=[key], args=uids))


@dataclass(frozen=True, slots=True)
class MembersAdded:
    seq: int  # the channel's last seq when the members joined
    added: list[str]  # uids that were not members before the call
    dropped: list[str]  # former members removed by a reset


def _texts(values: list[Any]) -> list[str]:
    return [_text(v) for v in values]


def append_call(
    *,
    channel: ChannelKeys,
    dispatch: str,
    message: bytes,
    red_dot: bool,
    dedupe_ttl: int,
    message_id: int,
    client_msg_no: str,
    from_uid: str,
    digest: str,
    new_epoch: str,
    now_ms: int,
    origin_conn: str = "",
    check_uid: str = "",
    retention: int = 0,
) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of one append (see lua/append.lua)."""
    keys = channel_keys(channel, dispatch)
    by_id, by_cmn = id_field(message_id), client_msg_no_field(client_msg_no)
    args = [
        message,
        int(red_dot),
        dedupe_ttl,
        by_id.field,
        by_id.bucket_hash,
        by_cmn.field,
        by_cmn.bucket_hash,
        digest,
        new_epoch,
        now_ms,
        origin_conn,
        channel.channel_type,
        channel.channel_id,
        from_uid,
        check_uid,
        retention,
    ]
    return keys, args


# By value without Enum.__call__ (a slow lookup for one send's reply).
_STATUS_BY_CODE = {status.value: status for status in AppendStatus}


def parse_append(reply: list[Any]) -> AppendOutcome:
    status = _STATUS_BY_CODE.get(reply[0])
    if status is None:
        status = AppendStatus(int(reply[0]))  # a str or bytes code, or unknown
    if status is AppendStatus.STORED:
        return AppendOutcome(status, int(reply[1]), epoch=_text(reply[2]))
    if status is AppendStatus.DUPLICATE:
        first = _decode_message(reply[2])
        return AppendOutcome(
            status, int(reply[1]), first.message_id, digest=_text(reply[3])
        )
    return AppendOutcome(status)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
