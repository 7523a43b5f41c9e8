"""Channels, subscribers and black/white lists (reference §6).

Channel-side changes are one Lua script each (one slot); the conversation records
they imply are user-side writes that follow in a pipeline (other slots), see
broker/conversation_records.py.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from enum import Enum

from redis.asyncio import Redis

from broker.admin_protocol import (
    ChannelCreateRequest,
    ChannelFlags,
    ChannelListRequest,
    ChannelRequest,
    SubscriberAddRequest,
    SubscriberRemoveRequest,
    WhitelistEntry,
)
from broker.channels import (
    ChannelType,
    InvalidId,
    check_channel_type,
    check_id,
    person_channel_id,
)
from broker.conversation_records import ConversationRecords
from broker.errors import bad_request
from broker.keys import ChannelKeys, Keys
from broker.scripts import Scripts

# Channel types that never get conversations (reference §4: data, temp, live).
NO_CONVERSATIONS = frozenset({ChannelType.DATA, ChannelType.TEMP, ChannelType.LIVE})


class ListKind(Enum):
    BLACKLIST = "blacklist"
    WHITELIST = "whitelist"


class ListOp(Enum):
    ADD = "add"
    REMOVE = "remove"
    SET = "set"
    CLEAR = "remove_all"


def now_ms() -> int:
    return int(time.time() * 1000)


def checked_channel(channel_id: str, channel_type: int) -> tuple[int, str]:
    """(type, id) of a channel named by an admin call; raises a 400 when invalid.

    For person channels (type 1) the id is a uid: flags, black- and whitelists of a
    person channel belong to that user (reference §6).
    """
    if channel_type == 0:
        raise bad_request("channel_type must not be 0")
    try:
        return check_channel_type(channel_type), check_id(channel_id, "channel_id")
    except InvalidId as exc:
        raise bad_request(str(exc)) from None


def checked_uids(uids: Sequence[str], field: str, limit: int) -> list[str]:
    """The uid list of a call, deduplicated in order; 400 when too long or invalid."""
    if len(uids) > limit:
        raise bad_request(f"{field} has more than {limit} entries")
    try:
        return list(dict.fromkeys(check_id(uid, field) for uid in uids))
    except InvalidId as exc:
        raise bad_request(str(exc)) from None


def checked_flags(flags: dict[str, int]) -> dict[str, int]:
    for name, value in flags.items():
        if value not in (0, 1):
            raise bad_request(f"{name} must be 0 or 1")
    return flags


class ChannelAdmin:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        scripts: Scripts,
        records: ConversationRecords,
        max_list: int,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.scripts = scripts
        self.records = records
        self.max_list = max_list

    def _uids(self, uids: Sequence[str], field: str) -> list[str]:
        return checked_uids(uids, field, self.max_list)

    # -- channel records ----------------------------------------------------------
    async def upsert(self, req: ChannelCreateRequest) -> None:
        """POST /channel: overwrite every flag, then add (or reset) subscribers."""
        channel_type, channel_id = checked_channel(req.channel_id, req.channel_type)
        flags = checked_flags(req.flag_values())
        if channel_type == ChannelType.PERSON and req.subscribers:
            raise bad_request("a person channel has no subscribers")
        if req.reset not in (0, 1):
            raise bad_request("reset must be 0 or 1")
        subscribers = self._uids(req.subscribers, "subscribers")
        channel = self.keys.channel(channel_type, channel_id)
        await self.redis.hset(channel.meta, mapping=flags)  # type: ignore[arg-type]
        if subscribers or req.reset:
            await self._add(
                channel_type, channel_id, subscribers, reset=bool(req.reset)
            )

    async def set_info(self, req: ChannelFlags) -> None:
        """POST /channel/info: overwrite every flag; membership is untouched."""
        channel_type, channel_id = checked_channel(req.channel_id, req.channel_type)
        flags = checked_flags(req.flag_values())
        channel = self.keys.channel(channel_type, channel_id)
        await self.redis.hset(channel.meta, mapping=flags)  # type: ignore[arg-type]

    async def delete(self, req: ChannelRequest) -> None:
        """Remove the channel's log, meta, members, lists, badge and index, and the
        former members' conversations. A missing channel is a no-op."""
        channel_type, channel_id = checked_channel(req.channel_id, req.channel_type)
        if channel_type == ChannelType.PERSON:
            raise bad_request("a person channel cannot be deleted")
        channel = self.keys.channel(channel_type, channel_id)
        former = await self.scripts.channel_delete(channel=channel)
        if former:
            await self.records.delete(former, channel_type, channel_id)

    # -- subscribers --------------------------------------------------------------
    async def add_subscribers(self, req: SubscriberAddRequest) -> None:
        channel_type = req.channel_type or int(ChannelType.GROUP)
        channel_type, channel_id = checked_channel(req.channel_id, channel_type)
        if channel_type == ChannelType.PERSON:
            raise bad_request("a person channel has no subscribers")
        if req.temp_subscriber == 1:
            raise bad_request("temp_subscriber is no longer supported")
        if req.reset not in (0, 1):
            raise bad_request("reset must be 0 or 1")
        subscribers = self._uids(req.subscribers, "subscribers")
        if not subscribers:
            raise bad_request("subscribers must not be empty")
        await self._add(channel_type, channel_id, subscribers, reset=bool(req.reset))

    async def _add(
        self, channel_type: int, channel_id: str, uids: list[str], *, reset: bool
    ) -> None:
        channel = self.keys.channel(channel_type, channel_id)
        result = await self.scripts.members_add(channel=channel, uids=uids, reset=reset)
        if result.dropped:
            await self.records.delete(result.dropped, channel_type, channel_id)
        if result.added and channel_type not in NO_CONVERSATIONS:
            await self.records.create(
                result.added,
                channel_type,
                channel_id,
                read_seq=result.seq,
                now_ms=now_ms(),
            )

    async def remove_subscribers(self, req: SubscriberRemoveRequest) -> None:
        channel_type, channel_id = checked_channel(req.channel_id, req.channel_type)
        if channel_type == ChannelType.PERSON:
            raise bad_request("a person channel has no subscribers")
        subscribers = self._uids(req.subscribers, "subscribers")
        if not subscribers:
            raise bad_request("subscribers must not be empty")
        channel = self.keys.channel(channel_type, channel_id)
        await self.scripts.members_remove(
            channel=channel, uids=subscribers, remove_all=False
        )
        # Every listed uid loses the conversation, member or not (idempotent).
        await self.records.delete(subscribers, channel_type, channel_id)

    async def remove_all_subscribers(self, req: ChannelRequest) -> None:
        channel_type, channel_id = checked_channel(req.channel_id, req.channel_type)
        if channel_type == ChannelType.PERSON:
            raise bad_request("a person channel has no subscribers")
        channel = self.keys.channel(channel_type, channel_id)
        removed = await self.scripts.members_remove(
            channel=channel, uids=[], remove_all=True
        )
        # Deliberate difference from v2: a former member cannot read the channel,
        # so keeping his conversation would only show a channel he cannot open.
        await self.records.delete(removed, channel_type, channel_id)

    # -- black and white lists ----------------------------------------------------
    async def change_list(
        self, kind: ListKind, op: ListOp, req: ChannelListRequest
    ) -> None:
        channel_type, channel_id = checked_channel(req.channel_id, req.channel_type)
        uids = [] if op is ListOp.CLEAR else self._uids(req.uids, "uids")
        if op in (ListOp.ADD, ListOp.REMOVE) and not uids:
            raise bad_request("uids must not be empty")
        channel = self.keys.channel(channel_type, channel_id)
        key = channel.blacklist if kind is ListKind.BLACKLIST else channel.whitelist
        if op is ListOp.ADD:
            await self.redis.sadd(key, *uids)
        elif op is ListOp.REMOVE:
            await self.redis.srem(key, *uids)
        elif op is ListOp.SET:
            await self.scripts.list_set(key=key, uids=uids)
        else:
            await self.redis.delete(key)
        await self._list_conversations(kind, op, channel_type, channel_id, uids)

    async def _list_conversations(
        self,
        kind: ListKind,
        op: ListOp,
        channel_type: int,
        channel_id: str,
        uids: list[str],
    ) -> None:
        """The conversation records a list change implies (reference §4, §6)."""
        if not uids:
            return
        person = channel_type == ChannelType.PERSON
        if kind is ListKind.BLACKLIST and not person:
            if op in (ListOp.ADD, ListOp.SET):
                await self.records.delete(uids, channel_type, channel_id)
            elif op is ListOp.REMOVE:
                await self._recreate_for_members(channel_type, channel_id, uids)
        elif kind is ListKind.WHITELIST and person and op is ListOp.ADD:
            await self._create_for_owner(channel_id, uids)

    async def _recreate_for_members(
        self, channel_type: int, channel_id: str, uids: list[str]
    ) -> None:
        """Un-blacklisted members get their conversation back (at the head)."""
        channel = self.keys.channel(channel_type, channel_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(channel.meta, "seq")  # type: ignore[unused-awaitable]
            pipe.smismember(channel.members, uids)  # type: ignore[unused-awaitable]
            seq, is_member = await pipe.execute()
        members = [uid for uid, flag in zip(uids, is_member, strict=True) if flag]
        if members and channel_type not in NO_CONVERSATIONS:
            await self.records.create(
                members,
                channel_type,
                channel_id,
                read_seq=int(seq or 0),
                now_ms=now_ms(),
            )

    async def _create_for_owner(self, owner: str, uids: list[str]) -> None:
        """whitelist_add on a person: the owner gets a conversation with each uid."""
        stored = [person_channel_id(owner, uid) for uid in uids]
        async with self.redis.pipeline(transaction=False) as pipe:
            for channel_id in stored:
                meta = self.keys.channel(ChannelType.PERSON, channel_id).meta
                pipe.hget(meta, "seq")  # type: ignore[unused-awaitable]
            seqs = await pipe.execute()
        await self.records.create_each(
            owner,
            [
                (int(ChannelType.PERSON), channel_id, int(seq or 0))
                for channel_id, seq in zip(stored, seqs, strict=True)
            ],
            now_ms=now_ms(),
        )

    async def whitelist(self, req: ChannelRequest) -> list[WhitelistEntry]:
        channel_type, channel_id = checked_channel(req.channel_id, req.channel_type)
        channel: ChannelKeys = self.keys.channel(channel_type, channel_id)
        uids = sorted(
            uid.decode() if isinstance(uid, bytes) else str(uid)
            for uid in await self.redis.smembers(channel.whitelist)
        )
        return [WhitelistEntry(id=i, uid=uid) for i, uid in enumerate(uids, 1)]
