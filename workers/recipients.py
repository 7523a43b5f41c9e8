"""Who receives a channel's messages, with a member cache per worker.

Person channels: the two parties of the fake id. Other channels: the ``members``
set, cached and dropped when the channel's ``members_ver`` moves (a channel without
``members_ver`` is never cached, so no change can be missed).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from broker.channels import SYSTEM_UID, ChannelType, person_parties

MAX_CACHED_CHANNELS = 10_000


@dataclass(frozen=True, slots=True)
class ChannelFacts:
    """What the worker reads of a channel once per batch."""

    members_ver: bytes | None
    large_flag: bytes | None
    member_count: int
    epoch: str
    fanned: bytes | None


def person_recipients(channel_id: str) -> frozenset[str]:
    first, second = person_parties(channel_id)
    return frozenset({first, second} - {SYSTEM_UID})


class MemberCache:
    """LRU of channel → (members_ver, members)."""

    def __init__(self, max_channels: int = MAX_CACHED_CHANNELS) -> None:
        self.max_channels = max_channels
        self._entries: OrderedDict[tuple[int, str], tuple[bytes, frozenset[str]]] = (
            OrderedDict()
        )

    def get(self, channel: tuple[int, str], ver: bytes | None) -> frozenset[str] | None:
        if ver is None:
            return None
        entry = self._entries.get(channel)
        if entry is None or entry[0] != ver:
            return None
        self._entries.move_to_end(channel)
        return entry[1]

    def put(
        self, channel: tuple[int, str], ver: bytes | None, members: frozenset[str]
    ) -> None:
        if ver is None:
            return
        self._entries[channel] = (ver, members)
        self._entries.move_to_end(channel)
        while len(self._entries) > self.max_channels:
            self._entries.popitem(last=False)


def is_person(channel_type: int) -> bool:
    return channel_type == ChannelType.PERSON
