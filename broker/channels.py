"""Pure channel logic: id rules, WuKongIM person-channel ids and shard placement."""

from __future__ import annotations

import re
import zlib
from enum import IntEnum

SYSTEM_UID = "____system"
MAX_ID_BYTES = 128
# `@ # &` are WuKongIM's separators; braces would break Redis hash tags.
_FORBIDDEN = re.compile(r"[@#&{}\x00-\x1f\x7f]")


class ChannelType(IntEnum):
    PERSON = 1
    GROUP = 2
    CUSTOMER_SERVICE = 3
    COMMUNITY = 4
    COMMUNITY_TOPIC = 5
    INFO = 6
    DATA = 7
    TEMP = 8
    LIVE = 9
    VISITORS = 10
    AGENT = 11
    AGENT_GROUP = 12


KNOWN_CHANNEL_TYPES = frozenset(int(t) for t in ChannelType)


class InvalidId(ValueError):
    """An id breaks the id rules; the message names the field and the rule."""


def check_id(value: str, field: str) -> str:
    """Return ``value`` if it is a valid uid or channel id, else raise InvalidId."""
    if not value:
        raise InvalidId(f"{field} must not be empty")
    try:
        size = len(value.encode())
    except UnicodeEncodeError:
        raise InvalidId(f"{field} is not valid UTF-8") from None
    if size > MAX_ID_BYTES:
        raise InvalidId(f"{field} is longer than {MAX_ID_BYTES} bytes")
    if _FORBIDDEN.search(value):
        raise InvalidId(f"{field} must not contain @ # & {{ }} or control characters")
    return value


def check_channel_type(channel_type: int) -> int:
    if channel_type not in KNOWN_CHANNEL_TYPES:
        raise InvalidId(f"channel_type {channel_type} is not a known channel type")
    return channel_type


def _crc32(uid: str) -> int:
    return zlib.crc32(uid.encode())


def person_channel_id(from_uid: str, to_uid: str) -> str:
    """WuKongIM's fake id of the 1:1 channel of two uids (same for either sender).

    The uid with the larger CRC32 comes first; on equal hashes ``to_uid`` comes
    first, as WuKongIM does.
    """
    if _crc32(from_uid) > _crc32(to_uid):
        return f"{from_uid}@{to_uid}"
    return f"{to_uid}@{from_uid}"


def person_parties(fake_id: str) -> tuple[str, str]:
    first, sep, second = fake_id.partition("@")
    if not sep:
        raise InvalidId("a person channel id must be two uids joined by @")
    return first, second


def other_party(fake_id: str, uid: str) -> str:
    """The party of a person channel that is not ``uid`` (WuKongIM's real id)."""
    first, second = person_parties(fake_id)
    return second if first == uid else first


def storage_channel_id(channel_id: str, channel_type: int, viewer_uid: str) -> str:
    """The id under which a channel is stored, as named by ``viewer_uid``.

    Person channels are addressed by the other party's uid (or by the full fake id,
    which WuKongIM also accepts); every other type is stored under its own id.
    """
    if channel_type != ChannelType.PERSON:
        return check_id(channel_id, "channel_id")
    if "@" in channel_id:
        first, second = person_parties(channel_id)
        check_id(first, "channel_id")
        check_id(second, "channel_id")
        if person_channel_id(first, second) != channel_id:
            raise InvalidId("channel_id is not a valid person channel id")
        return channel_id
    check_id(channel_id, "channel_id")
    return person_channel_id(check_id(viewer_uid, "login_uid"), channel_id)


def display_channel_id(stored_id: str, channel_type: int, viewer_uid: str) -> str:
    """The channel id as ``viewer_uid`` sees it: the other party for person channels."""
    if channel_type != ChannelType.PERSON or "@" not in stored_id:
        return stored_id
    return other_party(stored_id, viewer_uid)


def shard_of(channel_type: int, channel_id: str, shards: int) -> int:
    """The dispatch shard of a channel (DESIGN §3)."""
    return zlib.crc32(f"{channel_type}:{channel_id}".encode()) % shards
