"""``jindou rebuild-conversations``: recompute the fan-out's conversation data.

For every channel: its recipients (person parties or members), and from its log the
last activity and each sender's highest seq. These go through the same pure plan
and the same idempotent script as the workers' fan-out, so the result equals what
the workers maintain. Group members without a record get one read up to the head
(as a join does); read and delete points, which only users set, are kept.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from broker.channels import SYSTEM_UID, ChannelType
from broker.conversation_rules import has_conversations, is_large
from broker.conversation_scripts import ConversationScripts
from broker.keys import Keys
from broker.redis_conn import connect, keys_for
from broker.settings import Settings
from broker.store import decode_message, entry_seq
from workers.fanout import ChannelActivity, plan_conversations
from workers.recipients import person_recipients

log = logging.getLogger(__name__)

LOG_CHUNK = 1_000
SCRIPT_CHUNK = 1_000


@dataclass
class RebuildReport:
    channels: int = 0
    messages: int = 0
    updates: int = 0


def channel_of_meta_key(keys: Keys, key: str) -> tuple[int, str] | None:
    """``<prefix>{s<k>}:ch:<type>:<id>:meta`` → (type, id), or None if not one."""
    if not key.startswith(keys.prefix) or not key.endswith(":meta"):
        return None
    _, sep, rest = key[len(keys.prefix) :].partition("}:ch:")
    type_text, _, channel_id = rest[: -len(":meta")].partition(":")
    if not sep or not type_text.isdigit() or not channel_id:
        return None
    ref = (int(type_text), channel_id)
    return ref if keys.channel(*ref).meta == key else None


async def channels(redis: Redis, keys: Keys) -> AsyncIterator[tuple[int, str]]:
    async for raw in redis.scan_iter(match=f"{keys.prefix}*:ch:*:meta", count=1000):
        ref = channel_of_meta_key(keys, raw.decode())
        if ref is not None:
            yield ref


async def channel_activity(
    redis: Redis, keys: Keys, ref: tuple[int, str], large_threshold: int
) -> tuple[ChannelActivity, int] | None:
    """The activity of a channel's whole log, and its message count."""
    channel_type, channel_id = ref
    channel = keys.channel(channel_type, channel_id)
    seq, large_flag = await redis.hmget(channel.meta, ["seq", "large"])
    last_seq = int(seq or 0)
    if channel_type == ChannelType.PERSON:
        recipients = person_recipients(channel_id)
        large = False
    else:
        members: Any = await redis.smembers(channel.members)
        recipients = frozenset(m.decode() for m in members) - {SYSTEM_UID}
        large = is_large(large_flag, len(members), large_threshold)
    last_ms, count = 0, 0
    own: dict[str, int] = {}
    start = "-"
    while True:
        chunk: Any = await redis.xrange(channel.log, start, "+", count=LOG_CHUNK)
        for entry_id, fields in chunk:
            message = decode_message(fields[b"m"])
            last_ms = max(last_ms, message.timestamp_ms)
            if message.from_uid != SYSTEM_UID:
                own[message.from_uid] = entry_seq(entry_id)
            count += 1
        if len(chunk) < LOG_CHUNK:
            break
        start = f"({chunk[-1][0].decode()}"
    if count == 0:
        return None
    create_read = 0 if channel_type == ChannelType.PERSON else last_seq
    activity = ChannelActivity(
        channel_type=channel_type,
        channel_id=channel_id,
        recipients=recipients,
        large=large,
        last_ms=last_ms,
        own=own,
        create_read=create_read,
    )
    return activity, count


async def rebuild_conversations(
    redis: Redis, keys: Keys, large_threshold: int
) -> RebuildReport:
    scripts = ConversationScripts(redis, keys)
    report = RebuildReport()
    async for ref in channels(redis, keys):
        if not has_conversations(ref[0]):
            continue
        found = await channel_activity(redis, keys, ref, large_threshold)
        if found is None:
            continue
        activity, count = found
        report.channels += 1
        report.messages += count
        updates = list(plan_conversations([activity]).items())
        for i in range(0, len(updates), SCRIPT_CHUNK):
            async with redis.pipeline(transaction=False) as pipe:
                for (uid, field), update in updates[i : i + SCRIPT_CHUNK]:
                    await scripts.touch(
                        uid=uid,
                        field=field,
                        activity_ms=update.activity_ms,
                        own_seq=update.own_seq,
                        create_read=update.create_read,
                        client=pipe,
                    )
                await pipe.execute()
        report.updates += len(updates)
    log.info(
        "rebuilt conversations of %d channels (%d messages, %d updates)",
        report.channels,
        report.messages,
        report.updates,
    )
    return report


async def run_rebuild(settings: Settings) -> None:
    redis = connect(settings.redis_url, timeout=60.0)
    try:
        report = await rebuild_conversations(
            redis, keys_for(settings), settings.large_channel
        )
        sys.stdout.write(
            f"rebuilt {report.channels} channels, {report.messages} messages, "
            f"{report.updates} conversation updates\n"
        )
    finally:
        await redis.aclose()
