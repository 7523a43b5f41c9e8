"""Pure conversions from stored messages to WuKongIM's response shapes."""

from __future__ import annotations

from broker.channels import SYSTEM_UID, ChannelType, other_party
from broker.protocol import UNSET, MessageHeader, MessageResp, StoredMessage


def shown_uid(uid: str) -> str:
    """WuKongIM shows the system uid as an empty ``from_uid``."""
    return "" if uid == SYSTEM_UID else uid


def message_resp(seq: int, message: StoredMessage) -> MessageResp:
    """A v2 MessageResp. Person channels show the party that is not the sender."""
    channel_id = message.channel_id
    if message.channel_type == ChannelType.PERSON and "@" in channel_id:
        channel_id = other_party(channel_id, message.from_uid)
    return MessageResp(
        header=MessageHeader(
            no_persist=message.no_persist,
            red_dot=message.red_dot,
            sync_once=message.sync_once,
        ),
        setting=message.setting,
        message_id=message.message_id,
        message_idstr=str(message.message_id),
        client_msg_no=message.client_msg_no,
        message_seq=seq,
        from_uid=shown_uid(message.from_uid),
        channel_id=channel_id,
        channel_type=message.channel_type,
        topic=message.topic or UNSET,
        expire=message.expire,
        timestamp=message.timestamp_ms // 1000,
        payload=message.payload,
    )
