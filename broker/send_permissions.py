"""Checks of a client sender that live outside the channel's slot (reference §6).

Same-channel checks (subscriber, black/whitelist, send_ban of a group) run inside
append.lua / permit.lua, atomically with the write. This module reads, in one
round trip, what lives elsewhere: whether the sender is a system uid (exempt), the
sender's own person record (ban, send_ban) and, for a person channel, the
recipient's blacklist.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from broker.channels import ChannelType, other_party
from broker.errors import ApiError, Reason, forbidden
from broker.keys import Keys


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


class SendPermissions:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def facts(
        self, uid: str, channel_type: int, stored_channel_id: str
    ) -> SenderFacts:
        own = self.keys.channel(ChannelType.PERSON, uid)
        person = channel_type == ChannelType.PERSON
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.sismember(self.keys.system_uids, uid)  # type: ignore[unused-awaitable]
            pipe.hmget(own.meta, ["ban", "send_ban"])  # type: ignore[unused-awaitable]
            if person:
                recipient = other_party(stored_channel_id, uid)
                theirs = self.keys.channel(ChannelType.PERSON, recipient)
                pipe.sismember(self.keys.system_uids, recipient)  # type: ignore[unused-awaitable]
                pipe.sismember(theirs.blacklist, uid)  # type: ignore[unused-awaitable]
            replies = await pipe.execute()
        ban, send_ban = replies[1]
        return SenderFacts(
            sender_is_system=bool(replies[0]),
            sender_banned=ban == b"1",
            sender_send_banned=send_ban == b"1",
            recipient_is_system=person and bool(replies[2]),
            in_recipient_blacklist=person and bool(replies[3]),
        )

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
