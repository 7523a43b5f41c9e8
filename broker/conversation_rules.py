"""Pure rules of per-user conversation records (docs/design-notes.md, Conversations).

A record is the value of field ``<channel_type>:<stored_channel_id>`` in
``jd:{u:<uid>}:conv``: ``"<read_seq>,<own_last_seq>,<deleted_seq>"``.
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.channels import ChannelType

# Channel types that never get conversations (reference §4: data, temp, live).
NO_CONVERSATION_TYPES = frozenset(
    {int(ChannelType.DATA), int(ChannelType.TEMP), int(ChannelType.LIVE)}
)
# Types whose records are made by the first message rather than by joining.
CREATED_BY_MESSAGE_TYPES = frozenset({int(ChannelType.PERSON)})
NS_PER_MS = 1_000_000


@dataclass(frozen=True, slots=True)
class ConvRecord:
    read_seq: int = 0
    own_last_seq: int = 0
    deleted_seq: int = 0

    @property
    def cursor(self) -> int:
        """Messages after this seq may count as unread: sending implies reading."""
        return max(self.read_seq, self.own_last_seq)

    def encode(self) -> str:
        return f"{self.read_seq},{self.own_last_seq},{self.deleted_seq}"


def parse_record(value: bytes | str | None) -> ConvRecord:
    if value is None:
        return ConvRecord()
    text = value.decode() if isinstance(value, bytes) else value
    read, own, deleted = (int(part) for part in text.split(","))
    return ConvRecord(read, own, deleted)


def conv_field(channel_type: int, stored_channel_id: str) -> str:
    return f"{channel_type}:{stored_channel_id}"


def parse_field(field: bytes | str) -> tuple[int, str]:
    """``"2:g1"`` → ``(2, "g1")``; channel ids may contain ':' after the type."""
    text = field.decode() if isinstance(field, bytes) else field
    channel_type, _, channel_id = text.partition(":")
    return int(channel_type), channel_id


def has_conversations(channel_type: int) -> bool:
    return channel_type not in NO_CONVERSATION_TYPES


def version_of(ms: int) -> int:
    """The API's conversation ``version`` (ns, like WuKongIM) of an activity ms."""
    return ms * NS_PER_MS


def min_ms_of_version(version: int) -> int:
    """Activity at or after this ms is newer than ``version`` (inclusive)."""
    return -(-version // NS_PER_MS)  # integer ceil: versions exceed float precision


def set_unread_target(last_seq: int, unread: int) -> int:
    """v2 ``setUnread``: the read cursor that leaves ``unread`` messages after it."""
    if unread == 0:
        return last_seq
    if unread > last_seq:
        return max(last_seq - 1, 0)
    return last_seq - unread


def is_large(flag: bytes | str | None, member_count: int, threshold: int) -> bool:
    """Large channels get no per-member writes; they are merged at read time."""
    return flag in (b"1", "1") or member_count > threshold


def parse_last_msg_seqs(text: str, uid: str) -> dict[str, int]:
    """v2 ``last_msg_seqs`` ``"channelId:channelType:seq|..."`` (real channel ids)
    → conv field → seq. Raises ValueError (or InvalidId) on a malformed entry."""
    from broker.channels import check_channel_type, storage_channel_id

    result: dict[str, int] = {}
    for part in filter(None, text.split("|")):
        pieces = part.rsplit(":", 2)
        if len(pieces) != 3 or not (pieces[1].isdigit() and pieces[2].isdigit()):
            raise ValueError(f"last_msg_seqs entry {part!r} is not channelId:type:seq")
        channel_id, type_text, seq_text = pieces
        channel_type = check_channel_type(int(type_text))
        stored = storage_channel_id(channel_id, channel_type, uid)
        result[conv_field(channel_type, stored)] = int(seq_text)
    return result
