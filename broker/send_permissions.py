"""Checks of a client sender that live outside the channel's slot (reference §6).

Same-channel checks (subscriber, black/whitelist, send_ban of a group) run inside
append.lua / permit.lua, atomically with the write. This module reads, in one
round trip, what lives elsewhere: whether the sender is a system uid (exempt), the
sender's own person record (ban, send_ban) and, for a person channel, the
recipient's blacklist. Concurrent checks share that round trip (``TickBatcher``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from broker.batching import TickBatcher
from broker.channels import ChannelType, other_party
from broker.errors import ApiError, Reason, forbidden
from broker.keys import Keys
from broker.redis_batch import pack, run_packed


@dataclass(frozen=True, slots=True)
class SenderFacts:
    sender_is_system: bool
    sender_banned: bool
    sender_send_banned: bool
    recipient_is_system: bool = False
    in_recipient_blacklist: bool = False


def sender_refusal(facts: SenderFacts, *, person: bool) -> ApiError | None:
    """The refusal of a client send by what is known outside the channel. Pure."""
    if facts.sender_is_system:
        return None
    if facts.sender_banned:
        return forbidden("the sender is banned", Reason.BAN)
    if facts.sender_send_banned:
        return forbidden("the sender may not send messages", Reason.SEND_BAN)
    if person and facts.in_recipient_blacklist and not facts.recipient_is_system:
        return forbidden(
            "the recipient has blacklisted the sender", Reason.IN_BLACKLIST
        )
    return None


FactsQuery = tuple[str, int, str]  # uid, channel_type, stored channel id


def _facts(replies: list[Any], person: bool) -> SenderFacts:
    """SenderFacts from the raw replies of one query (see ``_facts_batch``). Pure."""
    ban, send_ban = replies[1]
    return SenderFacts(
        sender_is_system=bool(replies[0]),
        sender_banned=ban == b"1",
        sender_send_banned=send_ban == b"1",
        recipient_is_system=person and bool(replies[2]),
        in_recipient_blacklist=person and bool(replies[3]),
    )


class SendPermissions:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        # Concurrent sends (many WebSocket clients) share one round trip per loop
        # tick instead of one each (batching.py); a lone send waits for no one.
        self._batches: TickBatcher[FactsQuery, SenderFacts] = TickBatcher(
            self._facts_batch
        )

    async def facts(
        self, uid: str, channel_type: int, stored_channel_id: str
    ) -> SenderFacts:
        return await self._batches.submit((uid, channel_type, stored_channel_id))

    async def _facts_batch(
        self, queries: list[FactsQuery]
    ) -> list[SenderFacts | BaseException]:
        # Packed commands, raw replies (redis_batch): redis-py's pipeline was a
        # quarter of the api's work per WebSocket send (BENCHMARKS.md, B3).
        keys = self.keys
        system = keys.system_uids
        commands: list[bytes] = []
        for uid, channel_type, stored_channel_id in queries:
            commands.append(pack("SISMEMBER", system, uid))
            own = keys.channel(ChannelType.PERSON, uid)
            commands.append(pack("HMGET", own.meta, "ban", "send_ban"))
            if channel_type == ChannelType.PERSON:
                recipient = other_party(stored_channel_id, uid)
                theirs = keys.channel(ChannelType.PERSON, recipient)
                commands.append(pack("SISMEMBER", system, recipient))
                commands.append(pack("SISMEMBER", theirs.blacklist, uid))
        replies = await run_packed(self.redis, commands)
        results: list[SenderFacts | BaseException] = []
        at = 0
        for _, channel_type, _ in queries:
            person = channel_type == ChannelType.PERSON
            count = 4 if person else 2
            mine = replies[at : at + count]
            at += count
            error = next((r for r in mine if isinstance(r, BaseException)), None)
            results.append(error if error is not None else _facts(mine, person))
        return results

    async def check(self, uid: str, channel_type: int, stored_channel_id: str) -> str:
        """Raise the refusal of a client send, or return the uid the channel-side
        script must still check ('' for a system uid, which is exempt)."""
        facts = await self.facts(uid, channel_type, stored_channel_id)
        refusal = sender_refusal(facts, person=channel_type == ChannelType.PERSON)
        if refusal is not None:
            raise refusal
        if facts.sender_is_system or channel_type == ChannelType.PERSON:
            # Person channels have no member set; the parties are implied by the id.
            return ""
        return uid
