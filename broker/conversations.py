"""Conversations, read side (DESIGN §6, reference §4) and the membership hooks.

A user's conversations are the fields of ``jd:{u:<uid>}:conv``; ``recent`` gives each
its last activity (ms) as the workers saw it. Large channels get no per-member
writes, so their activity is merged here from the channel meta's ``last_ms``.
Unread counts the red_dot bits of the badge bitmap after
``max(read_seq, own_last_seq)`` (script ``channel_unread``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from broker.channels import (
    SYSTEM_UID,
    ChannelType,
    InvalidId,
    check_channel_type,
    check_id,
    display_channel_id,
    other_party,
    person_parties,
    storage_channel_id,
)
from broker.conversation_rules import (
    ConvRecord,
    conv_field,
    has_conversations,
    is_large,
    min_ms_of_version,
    parse_field,
    parse_last_msg_seqs,
    parse_record,
    set_unread_target,
    version_of,
)
from broker.conversation_scripts import (
    ChannelState,
    ConversationScripts,
    parse_channel_state,
)
from broker.errors import bad_request, forbidden
from broker.keys import Keys
from broker.protocol import MessageResp
from broker.protocol_conversations import (
    DEFAULT_PAGE_SIZE,
    MAX_CHANNELS,
    MAX_MSG_COUNT,
    MAX_PAGE_SIZE,
    ChannelRefBody,
    Conversation,
    ConversationChannel,
    ConversationSyncRequest,
    SyncByChannelsRequest,
)
from broker.store import LogEntry, decode_message, entry_seq
from broker.views import message_resp


@dataclass(frozen=True, slots=True)
class ConvView:
    """One conversation of one user, with its channel's state at read time."""

    field: str
    channel_type: int
    channel_id: str  # stored id
    record: ConvRecord
    recent_ms: int
    state: ChannelState
    large: bool

    @property
    def activity_ms(self) -> int:
        if self.large:
            return max(self.recent_ms, self.state.last_ms)
        return self.recent_ms

    @property
    def visible(self) -> bool:
        """Listed while it has a message after the user's delete point."""
        return self.state.last_seq > self.record.deleted_seq


@dataclass(frozen=True, slots=True)
class ChannelHead:
    last_seq: int
    last_ms: int
    large: bool


def check_uid(uid: str) -> str:
    try:
        return check_id(uid, "uid")
    except InvalidId as exc:
        raise bad_request(str(exc)) from None


def channel_ref(uid: str, channel_id: str, channel_type: int) -> tuple[int, str]:
    """(type, stored id) of a channel named by ``uid``; bad input gives a 400."""
    try:
        check_channel_type(channel_type)
        return channel_type, storage_channel_id(channel_id, channel_type, uid)
    except InvalidId as exc:
        raise bad_request(str(exc)) from None


def recents_start(view: ConvView, given: dict[str, int], *, only_unread: bool) -> int:
    """First seq of the recents: after what the client has, else after what it
    read (only_unread), else from the start; never before the delete point."""
    if view.field in given:
        start = given[view.field] + 1
    elif only_unread:
        start = view.record.cursor + 1
    else:
        start = 1
    return max(start, view.record.deleted_seq + 1)


class ConversationService:
    def __init__(self, redis: Redis, keys: Keys, large_threshold: int) -> None:
        self.redis = redis
        self.keys = keys
        self.large_threshold = large_threshold
        self.scripts = ConversationScripts(redis, keys)

    # -- reading ---------------------------------------------------------------------
    async def sync(self, req: ConversationSyncRequest) -> list[Conversation]:
        uid = check_uid(req.uid)
        if req.version < 0 or req.msg_count < 0 or req.page < 0 or req.page_size < 0:
            raise bad_request("version, msg_count, page and page_size must be >= 0")
        msg_count = min(req.msg_count, MAX_MSG_COUNT)  # capped, as v2 caps page_size
        try:
            given = parse_last_msg_seqs(req.last_msg_seqs, uid)
        except (ValueError, InvalidId) as exc:
            raise bad_request(str(exc)) from None
        excluded = set(req.exclude_channel_types)
        since_ms = min_ms_of_version(req.version) if req.version > 0 else 0
        views = [
            v
            for v in await self._views(uid)
            if v.visible
            and not _hidden_party(v, uid)
            and (v.channel_type not in excluded or v.field in given)
            and (not req.only_unread or v.state.unread > 0)
            and v.activity_ms >= since_ms
        ]
        views.sort(key=lambda v: (-v.activity_ms, v.field))
        if req.page >= 1:
            size = min(req.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
            views = views[(req.page - 1) * size : req.page * size]
        return await self._render(
            uid, views, msg_count, given, only_unread=bool(req.only_unread)
        )

    async def sync_by_channels(
        self, req: SyncByChannelsRequest, caller_uid: str | None
    ) -> list[Conversation]:
        uid = check_uid(req.uid)
        if req.msg_count < 0:
            raise bad_request("msg_count must be >= 0")
        if len(req.channels) > MAX_CHANNELS:
            raise bad_request(f"at most {MAX_CHANNELS} channels per request")
        refs = [self._ref(uid, c) for c in req.channels]
        if caller_uid is not None:
            for ref in refs:
                await self.check_member(caller_uid, ref)
        views = await self._views(uid, only=refs)
        msg_count = min(req.msg_count, MAX_MSG_COUNT)
        return await self._render(uid, views, msg_count, {}, only_unread=False)

    async def channels(self, uid: str) -> list[ConversationChannel]:
        fields = await self.redis.hkeys(self.keys.conversations(check_uid(uid)))
        refs = sorted(parse_field(f) for f in fields)
        return [ConversationChannel(channel_id=i, channel_type=t) for t, i in refs]

    def _ref(self, uid: str, body: ChannelRefBody) -> tuple[int, str]:
        return channel_ref(uid, body.channel_id, body.channel_type)

    async def _views(
        self, uid: str, only: Sequence[tuple[int, str]] | None = None
    ) -> list[ConvView]:
        conv_key, recent_key = self.keys.conversations(uid), self.keys.recent(uid)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(conv_key)  # type: ignore[unused-awaitable]
            pipe.zrange(recent_key, 0, -1, withscores=True)  # type: ignore[unused-awaitable]
            raw_records, raw_recent = await pipe.execute()
        records = {_text(f): parse_record(v) for f, v in raw_records.items()}
        recent = {_text(m): int(score) for m, score in raw_recent}
        if only is None:
            refs = [parse_field(f) for f in records]
        else:
            refs = list(dict.fromkeys(only))
        fields = [conv_field(t, i) for t, i in refs]
        async with self.redis.pipeline(transaction=False) as pipe:
            for (channel_type, channel_id), field in zip(refs, fields, strict=True):
                await self.scripts.channel_state(
                    channel=self.keys.channel(channel_type, channel_id),
                    cursor=records.get(field, ConvRecord()).cursor,
                    client=pipe,
                )
            states = [parse_channel_state(r) for r in await pipe.execute()]
        return [
            ConvView(
                field=field,
                channel_type=t,
                channel_id=i,
                record=records.get(field, ConvRecord()),
                recent_ms=recent.get(field, 0),
                state=state,
                large=self._large(t, state.large_flag, state.member_count),
            )
            for (t, i), field, state in zip(refs, fields, states, strict=True)
        ]

    def _large(self, channel_type: int, flag: bool, member_count: int) -> bool:
        if channel_type == ChannelType.PERSON:
            return False
        return is_large(b"1" if flag else None, member_count, self.large_threshold)

    async def _render(
        self,
        uid: str,
        views: Sequence[ConvView],
        msg_count: int,
        given: dict[str, int],
        *,
        only_unread: bool,
    ) -> list[Conversation]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for v in views:
                # The newest messages overall, filtered by start below, are the
                # newest ones after start; one is needed for last_client_msg_no.
                pipe.xrevrange(  # type: ignore[unused-awaitable]
                    self.keys.channel(v.channel_type, v.channel_id).log,
                    "+",
                    "-",
                    count=max(msg_count, 1),
                )
            logs = await pipe.execute()
        result = []
        for v, raw in zip(views, logs, strict=True):
            newest = [LogEntry(entry_seq(i), decode_message(f[b"m"])) for i, f in raw]
            start = recents_start(v, given, only_unread=only_unread)
            recents: list[MessageResp] = [
                message_resp(e.seq, e.message) for e in newest if e.seq >= start
            ][:msg_count]
            last_no = ""
            if newest and newest[0].seq == v.state.last_seq:
                last_no = newest[0].message.client_msg_no
            result.append(
                Conversation(
                    channel_id=display_channel_id(v.channel_id, v.channel_type, uid),
                    channel_type=v.channel_type,
                    unread=v.state.unread,
                    timestamp=v.state.last_ms // 1000,
                    last_msg_seq=v.state.last_seq,
                    last_client_msg_no=last_no,
                    readed_to_msg_seq=min(v.record.cursor, v.state.last_seq),
                    version=version_of(v.activity_ms),
                    recents=recents,
                )
            )
        return result

    # -- writing ---------------------------------------------------------------------
    async def head(self, channel_type: int, channel_id: str) -> ChannelHead:
        channel = self.keys.channel(channel_type, channel_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(channel.meta, ["seq", "last_ms", "large"])  # type: ignore[unused-awaitable]
            pipe.scard(channel.members)  # type: ignore[unused-awaitable]
            (seq, last_ms, large), count = await pipe.execute()
        return ChannelHead(
            int(seq or 0),
            int(last_ms or 0),
            channel_type != ChannelType.PERSON
            and is_large(large, int(count), self.large_threshold),
        )

    async def clear_unread(
        self, uid: str, channel_id: str, channel_type: int, caller_uid: str | None
    ) -> None:
        await self._move_read(uid, channel_id, channel_type, None, caller_uid)

    async def set_unread(
        self,
        uid: str,
        channel_id: str,
        channel_type: int,
        unread: int,
        caller_uid: str | None,
    ) -> None:
        if unread < 0:
            raise bad_request("unread must be >= 0")
        await self._move_read(uid, channel_id, channel_type, unread, caller_uid)

    async def _move_read(
        self,
        uid: str,
        channel_id: str,
        channel_type: int,
        unread: int | None,
        caller_uid: str | None,
    ) -> None:
        uid = check_uid(uid)
        ref = channel_ref(uid, channel_id, channel_type)
        if not has_conversations(channel_type):
            raise bad_request(f"channel_type {channel_type} has no conversations")
        if caller_uid is not None:
            await self.check_member(caller_uid, ref)
        head = await self.head(*ref)
        target = (
            head.last_seq
            if unread is None
            else set_unread_target(head.last_seq, unread)
        )
        await self.scripts.move_read(
            uid=uid,
            field=conv_field(*ref),
            read_seq=target,
            activity_ms=0 if head.large else head.last_ms,
        )

    async def delete(self, uid: str, channel_id: str, channel_type: int) -> None:
        uid = check_uid(uid)
        ref = channel_ref(uid, channel_id, channel_type)
        head = await self.head(*ref)
        await self.scripts.mark_deleted(
            uid=uid, field=conv_field(*ref), deleted_seq=head.last_seq
        )

    async def check_member(self, uid: str, ref: tuple[int, str]) -> None:
        """A user may only touch conversations of channels he belongs to."""
        channel_type, channel_id = ref
        if channel_type == ChannelType.PERSON:
            if uid in person_parties(channel_id):
                return
        elif await self.redis.sismember(
            self.keys.channel(channel_type, channel_id).members, uid
        ):
            return
        raise forbidden("not a member of this channel")

    # -- membership hooks (called when members join or leave) ------------------------
    async def members_joined(
        self, channel_type: int, channel_id: str, uids: Iterable[str]
    ) -> None:
        """New members get a conversation read up to the head (0 unread)."""
        if not has_conversations(channel_type):
            return
        head = await self.head(channel_type, channel_id)
        field = conv_field(channel_type, channel_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            for uid in uids:
                await self.scripts.touch(
                    uid=uid,
                    field=field,
                    activity_ms=0 if head.large else head.last_ms,
                    create_read=head.last_seq,
                    client=pipe,
                )
            await pipe.execute()

    async def members_left(
        self, channel_type: int, channel_id: str, uids: Iterable[str]
    ) -> None:
        field = conv_field(channel_type, channel_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            for uid in uids:
                await self.scripts.drop(uid=uid, field=field, client=pipe)
            await pipe.execute()


def _hidden_party(view: ConvView, uid: str) -> bool:
    """v2 hides person conversations with the system uid."""
    if view.channel_type != ChannelType.PERSON or "@" not in view.channel_id:
        return False
    return other_party(view.channel_id, uid) == SYSTEM_UID


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
