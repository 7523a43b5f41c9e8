"""Conversation API types (WuKongIM v2 field names, reference §4). Pure."""

from __future__ import annotations

import msgspec

from broker.protocol import MessageResp

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
MAX_MSG_COUNT = 100
MAX_CHANNELS = 1_000


class ConversationSyncRequest(msgspec.Struct, frozen=True, kw_only=True):
    uid: str = ""
    version: int = 0
    last_msg_seqs: str = ""
    msg_count: int = 0
    only_unread: int = 0
    exclude_channel_types: list[int] = []
    page: int = 0
    page_size: int = 0


class ChannelRefBody(msgspec.Struct, frozen=True, kw_only=True):
    channel_id: str = ""
    channel_type: int = 0


class SyncByChannelsRequest(msgspec.Struct, frozen=True, kw_only=True):
    uid: str = ""
    channels: list[ChannelRefBody] = []
    msg_count: int = 15


class ClearUnreadRequest(msgspec.Struct, frozen=True, kw_only=True):
    uid: str = ""
    channel_id: str = ""
    channel_type: int = 0
    message_seq: int = 0  # accepted and ignored, as in v2


class SetUnreadRequest(msgspec.Struct, frozen=True, kw_only=True):
    uid: str = ""
    channel_id: str = ""
    channel_type: int = 0
    unread: int = 0


class DeleteConversationRequest(msgspec.Struct, frozen=True, kw_only=True):
    uid: str = ""
    channel_id: str = ""
    channel_type: int = 0


class ConversationChannelsRequest(msgspec.Struct, frozen=True, kw_only=True):
    uid: str = ""


class Conversation(msgspec.Struct, frozen=True, kw_only=True):
    channel_id: str
    channel_type: int
    unread: int
    timestamp: int  # last message, seconds
    last_msg_seq: int
    last_client_msg_no: str
    offset_msg_seq: int = 0
    readed_to_msg_seq: int
    version: int  # last activity, ns (ms x 1e6); an inclusive cursor for `version`
    recents: list[MessageResp]


class ConversationChannel(msgspec.Struct, frozen=True, kw_only=True):
    channel_id: str  # the stored id (person channels: the fake id), as in v2
    channel_type: int
