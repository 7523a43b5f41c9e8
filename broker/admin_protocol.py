"""Request and response bodies of the channel and user admin API (WuKongIM v2
field names, reference §6, §7). Pure: no I/O."""

from __future__ import annotations

from typing import Annotated

import msgspec

# Channel flags kept in the channel meta hash; POST /channel overwrites all of them.
CHANNEL_FLAGS = ("ban", "disband", "send_ban", "allow_stranger", "large")


class ChannelFlags(msgspec.Struct, frozen=True, kw_only=True):
    channel_id: str = ""
    channel_type: int = 0
    ban: int = 0
    disband: int = 0
    send_ban: int = 0
    allow_stranger: int = 0
    large: int = 0

    def flag_values(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in CHANNEL_FLAGS}


class ChannelCreateRequest(ChannelFlags, frozen=True, kw_only=True):
    """POST /channel: flags, then (with ``reset``) the subscriber list."""

    subscribers: list[str] = []
    reset: int = 0


class ChannelRequest(msgspec.Struct, frozen=True, kw_only=True):
    channel_id: str = ""
    channel_type: int = 0


class SubscriberAddRequest(msgspec.Struct, frozen=True, kw_only=True):
    channel_id: str = ""
    channel_type: int = 0  # 0 means group, as in v2
    subscribers: list[str] = []
    reset: int = 0
    temp_subscriber: int = 0


class SubscriberRemoveRequest(msgspec.Struct, frozen=True, kw_only=True):
    channel_id: str = ""
    channel_type: int = 0
    subscribers: list[str] = []


class ChannelListRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Blacklist / whitelist changes. For channel_type 1 the channel is a uid."""

    channel_id: str = ""
    channel_type: int = 0
    uids: list[str] = []


class WhitelistEntry(msgspec.Struct, frozen=True, kw_only=True):
    """v2's member row. Jindou keeps lists as sets, so it has no times (null)."""

    id: int
    uid: str
    created_at: str | None = None
    updated_at: str | None = None


class UserTokenRequest(msgspec.Struct, frozen=True, kw_only=True):
    uid: str = ""
    token: str = ""
    device_flag: Annotated[int, msgspec.Meta(ge=0, le=255)] = 0  # a uint8 in WuKongIM
    device_level: Annotated[int, msgspec.Meta(ge=0, le=1)] = 0  # 0 slave, 1 master


class UidsRequest(msgspec.Struct, frozen=True, kw_only=True):
    uids: list[str] = []
