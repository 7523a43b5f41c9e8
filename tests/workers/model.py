"""An independent model of conversation state, computed from what a test did."""

from __future__ import annotations

from dataclasses import dataclass, field

from broker.channels import person_parties


@dataclass
class Sent:
    channel_type: int
    channel_id: str  # stored id
    from_uid: str
    seq: int
    red_dot: int


@dataclass
class ChannelModel:
    channel_type: int
    channel_id: str
    members: set[str] = field(default_factory=set)
    messages: list[Sent] = field(default_factory=list)

    @property
    def last_seq(self) -> int:
        return max((m.seq for m in self.messages), default=0)

    def recipients(self) -> set[str]:
        if self.channel_type == 1:
            return set(person_parties(self.channel_id))
        return set(self.members)


@dataclass
class UserConv:
    read_seq: int = 0
    deleted_seq: int = 0
    own_last_seq: int = 0


class Model:
    def __init__(self) -> None:
        self.channels: dict[str, ChannelModel] = {}
        # (uid, field) → cursors the user set (read, deleted); created at join.
        self.convs: dict[tuple[str, str], UserConv] = {}

    @staticmethod
    def field(channel_type: int, channel_id: str) -> str:
        return f"{channel_type}:{channel_id}"

    def channel(self, channel_type: int, channel_id: str) -> ChannelModel:
        key = self.field(channel_type, channel_id)
        if key not in self.channels:
            self.channels[key] = ChannelModel(channel_type, channel_id)
        return self.channels[key]

    def join(self, group: str, uids, channel_type: int = 2) -> None:
        ch = self.channel(channel_type, group)
        for uid in uids:
            ch.members.add(uid)
            self.convs.setdefault(
                (uid, self.field(channel_type, group)), UserConv(read_seq=ch.last_seq)
            )

    def leave(self, group: str, uids, channel_type: int = 2) -> None:
        ch = self.channel(channel_type, group)
        for uid in uids:
            ch.members.discard(uid)
            self.convs.pop((uid, self.field(channel_type, group)), None)

    def sent(self, message: Sent) -> None:
        ch = self.channel(message.channel_type, message.channel_id)
        ch.messages.append(message)
        self.apply(message)

    def apply(self, message: Sent) -> None:
        """What fan-out does for a message, given the membership right now."""
        ch = self.channel(message.channel_type, message.channel_id)
        fld = self.field(message.channel_type, message.channel_id)
        if message.channel_type == 1:
            for uid in ch.recipients():
                self.convs.setdefault((uid, fld), UserConv())
        conv = self.convs.get((message.from_uid, fld))
        if conv is not None:
            conv.own_last_seq = max(conv.own_last_seq, message.seq)

    def own_last_seq(self, uid: str, ch: ChannelModel) -> int:
        conv = self.convs.get((uid, self.field(ch.channel_type, ch.channel_id)))
        return conv.own_last_seq if conv else 0

    def clear_unread(self, uid: str, channel_type: int, channel_id: str) -> None:
        ch = self.channel(channel_type, channel_id)
        conv = self.convs.setdefault(
            (uid, self.field(channel_type, channel_id)), UserConv()
        )
        conv.read_seq = max(conv.read_seq, ch.last_seq)

    def set_unread(
        self, uid: str, channel_type: int, channel_id: str, unread: int
    ) -> None:
        ch = self.channel(channel_type, channel_id)
        last = ch.last_seq
        target = (
            last
            if unread == 0
            else (max(last - 1, 0) if unread > last else last - unread)
        )
        conv = self.convs.setdefault(
            (uid, self.field(channel_type, channel_id)), UserConv()
        )
        conv.read_seq = max(conv.read_seq, target)

    def delete(self, uid: str, channel_type: int, channel_id: str) -> None:
        conv = self.convs.get((uid, self.field(channel_type, channel_id)))
        if conv is not None:
            conv.deleted_seq = max(
                conv.deleted_seq, self.channel(channel_type, channel_id).last_seq
            )

    def unread(self, uid: str, ch: ChannelModel, conv: UserConv) -> int:
        cursor = max(conv.read_seq, self.own_last_seq(uid, ch))
        return sum(
            1 for m in ch.messages if m.seq > cursor and m.red_dot and m.from_uid != uid
        )

    def records(self, uid: str) -> dict[str, str]:
        """The expected ``conv`` hash of a user."""
        result = {}
        for (u, fld), conv in self.convs.items():
            if u != uid:
                continue
            result[fld] = f"{conv.read_seq},{conv.own_last_seq},{conv.deleted_seq}"
        return result

    def listed(self, uid: str) -> dict[str, tuple[int, int]]:
        """Expected /conversation/sync: field → (unread, last_msg_seq)."""
        result = {}
        for (u, fld), conv in self.convs.items():
            ch = self.channels[fld]
            if u == uid and ch.last_seq > conv.deleted_seq:
                result[fld] = (self.unread(uid, ch, conv), ch.last_seq)
        return result

    def users(self) -> set[str]:
        return {u for u, _ in self.convs}
