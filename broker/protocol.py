"""Wire and storage types (msgspec). Pure: no I/O.

HTTP bodies follow WuKongIM v2 field names. Request structs accept unknown fields
on purpose: apps written for WuKongIM send fields we ignore (``tag_key``,
``stream_no``...), and refusing them would break a migration.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

UNSET = msgspec.UNSET
UnsetType = msgspec.UnsetType


class MessageKind(StrEnum):
    PERSISTENT = "persistent"
    TRANSIENT = "transient"
    COMMAND = "command"


class Header(msgspec.Struct, frozen=True, kw_only=True):
    no_persist: int = 0
    red_dot: int = 0
    sync_once: int = 0

    @property
    def kind(self) -> MessageKind:
        """Every flag combination maps to exactly one kind (DESIGN §2)."""
        if self.sync_once:
            return MessageKind.COMMAND
        if self.no_persist:
            return MessageKind.TRANSIENT
        return MessageKind.PERSISTENT


# -- stored and internal messages (msgpack, positional: append fields only) --------
class StoredMessage(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """One message as written to a channel log (field ``m``) and dispatch entry."""

    message_id: int
    client_msg_no: str
    from_uid: str
    channel_id: str  # storage id: the fake id for person channels
    channel_type: int
    timestamp_ms: int
    payload: bytes
    red_dot: int = 0
    setting: int = 0
    expire: int = 0
    topic: str = ""
    no_persist: int = 0
    sync_once: int = 0


class LiveMessage(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """A transient or command message on a shard's live pub/sub channel."""

    message: StoredMessage
    to_uids: list[str] | None = None  # explicit receivers (send with `subscribers`)
    origin_conn: str = ""


class Delivery(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """The worker → gateway seam: one frame per api node on ``jd:node:<id>``.

    The node pushes ``message`` to every connection of ``uids`` it holds, except the
    connection ``origin_conn`` that sent it (that one got the send result).
    """

    uids: list[str]
    seq: int
    message: StoredMessage
    origin_conn: str = ""


# -- HTTP: send ---------------------------------------------------------------------
class SendRequest(msgspec.Struct, frozen=True, kw_only=True):
    header: Header = Header()
    setting: int = 0
    client_msg_no: str = ""
    from_uid: str = ""
    channel_id: str = ""
    channel_type: int = 0
    expire: int = 0
    topic: str = ""
    payload: bytes = b""
    subscribers: list[str] | None = None


class SendResult(msgspec.Struct, frozen=True, kw_only=True):
    message_id: int
    message_idstr: str
    client_msg_no: str
    message_seq: int
    persisted: bool


class SendResponse(msgspec.Struct, frozen=True, kw_only=True):
    status: int = 200
    data: SendResult


class SendBatchRequest(msgspec.Struct, frozen=True, kw_only=True):
    header: Header = Header()
    from_uid: str = ""
    subscribers: list[str] = []
    payload: bytes = b""


class SendBatchResponse(msgspec.Struct, frozen=True, kw_only=True):
    fail_uids: list[str]
    reason: list[str]


# -- HTTP: reading messages -----------------------------------------------------------
class MessageHeader(msgspec.Struct, frozen=True, kw_only=True):
    no_persist: int = 0
    red_dot: int = 0
    sync_once: int = 0


class MessageResp(msgspec.Struct, frozen=True, kw_only=True):
    """WuKongIM v2 MessageResp."""

    header: MessageHeader
    setting: int
    message_id: int
    message_idstr: str
    client_msg_no: str
    message_seq: int
    from_uid: str
    channel_id: str
    channel_type: int
    topic: str | UnsetType = UNSET
    expire: int
    timestamp: int
    payload: bytes


class MessageSyncRequest(msgspec.Struct, frozen=True, kw_only=True):
    login_uid: str = ""
    channel_id: str = ""
    channel_type: int = 0
    start_message_seq: int = 0
    end_message_seq: int = 0
    limit: int = 0
    pull_mode: int = 0


class MessageSyncResponse(msgspec.Struct, frozen=True, kw_only=True):
    start_message_seq: int
    end_message_seq: int
    more: int
    messages: list[MessageResp]
    epoch: str = ""
    # Retention removed part of the requested range; the first kept seq follows.
    truncated: bool = False
    first_message_seq: int = 0


class EncodedSyncResponse(msgspec.Struct, frozen=True, kw_only=True):
    """:class:`MessageSyncResponse` with each message already JSON-encoded (the
    HTTP answer: messages of a hot channel are encoded once, see history.py)."""

    start_message_seq: int
    end_message_seq: int
    more: int
    messages: list[msgspec.Raw]
    epoch: str = ""
    truncated: bool = False
    first_message_seq: int = 0


class MaxSeqResponse(msgspec.Struct, frozen=True, kw_only=True):
    message_seq: int


class MessagesRequest(msgspec.Struct, frozen=True, kw_only=True):
    login_uid: str = ""
    channel_id: str = ""
    channel_type: int = 0
    message_seqs: list[int] = []
    message_ids: list[int] = []
    client_msg_nos: list[str] = []


class MessagesResponse(msgspec.Struct, frozen=True, kw_only=True):
    start_message_seq: int = 0
    end_message_seq: int = 0
    more: int = 0
    messages: list[MessageResp] = []


class MessageRequest(msgspec.Struct, frozen=True, kw_only=True):
    login_uid: str = ""
    channel_id: str = ""
    channel_type: int = 0
    message_id: int = 0
    client_msg_no: str = ""


class CmdSyncRequest(msgspec.Struct, frozen=True, kw_only=True):
    uid: str = ""
    message_seq: int = 0
    limit: int = 0


class CmdSyncAckRequest(msgspec.Struct, frozen=True, kw_only=True):
    uid: str = ""
    last_message_seq: int = 0


class StatusResponse(msgspec.Struct, frozen=True, kw_only=True):
    status: int


class ErrorResponse(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    status: int
    msg: str
    reason_code: int = 0


class HealthResponse(msgspec.Struct, frozen=True, kw_only=True):
    status: str
