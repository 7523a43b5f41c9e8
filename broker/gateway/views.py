"""How one delivered message looks to each recipient (pure).

WuKongIM routing (reference part A): on a person channel every recipient sees the
*other* party as ``channelId`` (the receiver sees the sender; the sender's other
devices see the peer), and ``redDot`` is off for the sender's own devices. So a
message has at most two views, each encoded once per delivery.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

from broker.channels import ChannelType, other_party
from broker.gateway import frames, wire
from broker.protocol import StoredMessage
from broker.views import shown_uid


def is_person(message: StoredMessage) -> bool:
    return message.channel_type == ChannelType.PERSON and "@" in message.channel_id


def recv_params(seq: int, message: StoredMessage, *, own: bool) -> frames.RecvParams:
    """The ``recv`` params for a sender's device (``own``) or anybody else."""
    channel_id = message.channel_id
    if is_person(message):
        channel_id = (
            other_party(channel_id, message.from_uid) if own else message.from_uid
        )
    return frames.RecvParams(
        header=frames.WireHeader(
            noPersist=bool(message.no_persist),
            redDot=bool(message.red_dot) and not own,
            syncOnce=bool(message.sync_once),
        ),
        setting=frames.wire_setting(message.setting)
        if message.setting
        else frames.UNSET,
        messageId=str(message.message_id),
        messageSeq=seq,
        clientMsgNo=message.client_msg_no,
        timestamp=message.timestamp_ms // 1000,
        channelId=channel_id,
        channelType=message.channel_type,
        fromUid=shown_uid(message.from_uid),
        payload=base64.b64encode(message.payload).decode("ascii"),
        topic=message.topic or frames.UNSET,
        expire=message.expire or frames.UNSET,
    )


class RecvViews:
    """Encodes a message's ``recv`` frame lazily, once per view, as JSON and as the
    ready WebSocket frame every recipient's socket is written."""

    __slots__ = ("_frames", "_wire", "message", "seq")

    def __init__(self, seq: int, message: StoredMessage) -> None:
        self.seq = seq
        self.message = message
        self._frames: dict[bool, bytes] = {}
        self._wire: dict[bool, bytes] = {}

    def frame_for(self, uid: str) -> bytes:
        own = uid == self.message.from_uid
        frame = self._frames.get(own)
        if frame is None:
            params = recv_params(self.seq, self.message, own=own)
            frame = self._frames[own] = frames.notification("recv", params)
        return frame

    def wire_for(self, uid: str) -> bytes:
        """``frame_for`` as a WebSocket text frame (``wire.text_frame``)."""
        own = uid == self.message.from_uid
        ready = self._wire.get(own)
        if ready is None:
            ready = self._wire[own] = wire.text_frame(self.frame_for(uid))
        return ready

    def encoded_views(self) -> int:
        return len(self._frames)


def unique(uids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(uids))
