"""Who may read what, for callers with a user's own credentials (C8).

The manager token may read everything. A user (HTTP headers ``uid`` + ``token``)
may only name himself as ``login_uid`` / ``uid`` and only read channels he is in:
a party of a person channel, a current subscriber of any other channel.

Reusable by every read route: call ``require_self`` on the uid the request names,
then ``require_reader`` (or ``require_member`` with the stored channel id).
"""

from __future__ import annotations

from redis.asyncio import Redis

from broker.channels import (
    ChannelType,
    InvalidId,
    check_channel_type,
    person_parties,
    storage_channel_id,
)
from broker.errors import Reason, bad_request, forbidden
from broker.http.routing import Caller
from broker.keys import Keys


def require_self(caller: Caller, uid: str, field: str = "login_uid") -> None:
    """A user may only act as himself: ``uid`` must be the caller's uid."""
    if caller.is_manager or uid == caller.uid:
        return
    raise forbidden(f"{field} must be the uid of the caller's credentials")


def is_party(stored_person_id: str, uid: str) -> bool:
    try:
        return uid in person_parties(stored_person_id)
    except InvalidId:
        raise bad_request("not a person channel id") from None


async def require_member(
    redis: Redis, keys: Keys, caller: Caller, channel_type: int, stored_id: str
) -> None:
    """403 unless the caller may read the channel stored as ``stored_id``."""
    if caller.is_manager:
        return
    uid = caller.uid or ""
    if channel_type == ChannelType.PERSON:
        if is_party(stored_id, uid):
            return
    elif await redis.sismember(keys.channel(channel_type, stored_id).members, uid):
        return
    raise forbidden(
        "the caller is not a member of this channel", Reason.SUBSCRIBER_NOT_EXIST
    )


async def require_reader(
    redis: Redis,
    keys: Keys,
    caller: Caller,
    login_uid: str,
    channel_id: str,
    channel_type: int,
) -> None:
    """For a read naming ``login_uid`` and a channel as the API does (the other
    party's uid for person channels): the caller is that user and may read it."""
    if caller.is_manager:
        return
    require_self(caller, login_uid)
    try:
        check_channel_type(channel_type)
        stored_id = storage_channel_id(channel_id, channel_type, login_uid)
    except InvalidId as exc:
        raise bad_request(str(exc)) from None
    await require_member(redis, keys, caller, channel_type, stored_id)
