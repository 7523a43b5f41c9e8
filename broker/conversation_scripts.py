"""Lua scripts of conversation bookkeeping, with typed async wrappers.

Each script touches one slot: a user's ``conv`` + ``recent`` keys, or one channel's
keys. With ``client`` (a pipeline) a call is only queued.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from broker.keys import ChannelKeys, Keys
from broker.scripts import load

NO_CREATE = -1


@dataclass(frozen=True, slots=True)
class ChannelState:
    """A channel's head as the read side needs it, with the unread after a cursor."""

    last_seq: int
    last_ms: int
    large_flag: bool
    member_count: int
    unread: int


def parse_channel_state(reply: Any) -> ChannelState:
    last, last_ms, large, count, unread = (int(v) for v in reply)
    return ChannelState(last, last_ms, bool(large), count, unread)


class ConversationScripts:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._touch: AsyncScript = redis.register_script(load("conv_touch"))
        self._read: AsyncScript = redis.register_script(load("conv_read"))
        self._delete: AsyncScript = redis.register_script(load("conv_delete"))
        self._drop: AsyncScript = redis.register_script(load("conv_drop"))
        self._unread: AsyncScript = redis.register_script(load("channel_unread"))

    def _user_keys(self, uid: str) -> list[str]:
        return [self.keys.conversations(uid), self.keys.recent(uid)]

    async def touch(
        self,
        *,
        uid: str,
        field: str,
        activity_ms: int,
        own_seq: int = 0,
        create_read: int = NO_CREATE,
        client: Any = None,
    ) -> Any:
        return await self._touch(
            keys=self._user_keys(uid),
            args=[field, activity_ms, own_seq, create_read],
            client=client,
        )

    def queue_touch(
        self,
        pipe: Any,
        *,
        uid: str,
        field: str,
        activity_ms: int,
        own_seq: int = 0,
        create_read: int = NO_CREATE,
    ) -> None:
        """Queue ``touch`` on ``pipe`` as a bare EVALSHA: a script call on a
        redis-py pipeline costs one SCRIPT EXISTS round trip per execute. A reply
        NoScriptError means the call did not run: :meth:`ensure_loaded`, then
        queue it again."""
        keys = self._user_keys(uid)
        pipe.evalsha(
            self._touch.sha, 2, *keys, field, activity_ms, own_seq, create_read
        )

    @property
    def touch_sha(self) -> str:
        """The SHA1 of ``conv_touch`` (for callers that pack EVALSHA themselves)."""
        return str(self._touch.sha)

    async def ensure_loaded(self) -> None:
        await self.redis.script_load(self._touch.script)

    async def move_read(
        self,
        *,
        uid: str,
        field: str,
        read_seq: int,
        activity_ms: int,
        client: Any = None,
    ) -> Any:
        return await self._read(
            keys=self._user_keys(uid),
            args=[field, read_seq, activity_ms],
            client=client,
        )

    async def mark_deleted(
        self, *, uid: str, field: str, deleted_seq: int, client: Any = None
    ) -> Any:
        return await self._delete(
            keys=[self.keys.conversations(uid)],
            args=[field, deleted_seq],
            client=client,
        )

    async def drop(self, *, uid: str, field: str, client: Any = None) -> Any:
        return await self._drop(keys=self._user_keys(uid), args=[field], client=client)

    async def channel_state(
        self, *, channel: ChannelKeys, cursor: int, client: Any = None
    ) -> Any:
        """Queue or run ``channel_unread``; parse with :func:`parse_channel_state`."""
        return await self._unread(
            keys=[channel.meta, channel.badge, channel.members],
            args=[cursor],
            client=client,
        )
