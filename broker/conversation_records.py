"""Conversation records written by membership changes (design-notes "Conversations").

User keys live in other slots than channel keys, so these writes follow the
channel-side script in a pipeline. Each write is idempotent (HSETNX, ZADD NX,
HDEL, ZREM), so repeating a call after a failure converges.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from redis.asyncio import Redis

from broker.keys import Keys

# Commands per pipeline round trip; bounds the memory of one huge membership call.
_BATCH = 2_000


def conversation_field(channel_type: int, stored_channel_id: str) -> str:
    """The member of ``conv`` / ``recent`` that names one channel."""
    return f"{channel_type}:{stored_channel_id}"


def new_record(read_seq: int) -> str:
    """The record ``read_seq,own_last_seq,deleted_seq`` of a new conversation."""
    return f"{read_seq},0,0"


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class ConversationRecords:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def create(
        self,
        uids: Sequence[str],
        channel_type: int,
        stored_channel_id: str,
        *,
        read_seq: int,
        now_ms: int,
    ) -> None:
        """Give each uid the conversation if it has none, starting at ``read_seq``
        (0 unread). An existing record keeps its cursors."""
        field = conversation_field(channel_type, stored_channel_id)
        record = new_record(read_seq)
        for chunk in _chunks(uids, _BATCH // 2):
            async with self.redis.pipeline(transaction=False) as pipe:
                for uid in chunk:
                    pipe.hsetnx(self.keys.conversations(uid), field, record)  # type: ignore[unused-awaitable]
                    pipe.zadd(self.keys.recent(uid), {field: now_ms}, nx=True)  # type: ignore[unused-awaitable]
                await pipe.execute()

    async def create_each(
        self, owner: str, channels: Sequence[tuple[int, str, int]], *, now_ms: int
    ) -> None:
        """Give ``owner`` a conversation per ``(channel_type, stored_id, read_seq)``."""
        conv, recent = self.keys.conversations(owner), self.keys.recent(owner)
        for start in range(0, len(channels), _BATCH // 2):
            async with self.redis.pipeline(transaction=False) as pipe:
                for channel_type, stored_id, read_seq in channels[
                    start : start + _BATCH // 2
                ]:
                    field = conversation_field(channel_type, stored_id)
                    pipe.hsetnx(conv, field, new_record(read_seq))  # type: ignore[unused-awaitable]
                    pipe.zadd(recent, {field: now_ms}, nx=True)  # type: ignore[unused-awaitable]
                await pipe.execute()

    async def delete(
        self, uids: Sequence[str], channel_type: int, stored_channel_id: str
    ) -> None:
        """Remove the conversation from each uid's list (HDEL + ZREM)."""
        field = conversation_field(channel_type, stored_channel_id)
        for chunk in _chunks(uids, _BATCH // 2):
            async with self.redis.pipeline(transaction=False) as pipe:
                for uid in chunk:
                    pipe.hdel(self.keys.conversations(uid), field)  # type: ignore[unused-awaitable]
                    pipe.zrem(self.keys.recent(uid), field)  # type: ignore[unused-awaitable]
                await pipe.execute()
