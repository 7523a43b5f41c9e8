"""Conversation routes (WuKongIM v2 paths, reference §4).

With a user's own credentials, ``uid`` must be that user (403 otherwise).
"""

from __future__ import annotations

from typing import Any

from broker.errors import forbidden
from broker.http.context import services
from broker.http.routing import Access, Call, Route
from broker.protocol import StatusResponse
from broker.protocol_conversations import (
    ClearUnreadRequest,
    Conversation,
    ConversationChannel,
    ConversationChannelsRequest,
    ConversationSyncRequest,
    DeleteConversationRequest,
    SetUnreadRequest,
    SyncByChannelsRequest,
)

OK = StatusResponse(status=200)


def own_uid(call: Call[Any], uid: str) -> str | None:
    """The caller's uid for a user caller (None for the manager); a user may only
    act as himself."""
    if call.caller.is_manager:
        return None
    if call.caller.uid != uid:
        raise forbidden("uid must be the authenticated user")
    return call.caller.uid


async def sync(call: Call[ConversationSyncRequest]) -> list[Conversation]:
    own_uid(call, call.body.uid)
    return await services(call.request).conversations.sync(call.body)


async def sync_by_channels(call: Call[SyncByChannelsRequest]) -> list[Conversation]:
    caller = own_uid(call, call.body.uid)
    return await services(call.request).conversations.sync_by_channels(
        call.body, caller
    )


async def channels(
    call: Call[ConversationChannelsRequest],
) -> list[ConversationChannel]:
    own_uid(call, call.body.uid)
    return await services(call.request).conversations.channels(call.body.uid)


async def clear_unread(call: Call[ClearUnreadRequest]) -> StatusResponse:
    b = call.body
    caller = own_uid(call, b.uid)
    await services(call.request).conversations.clear_unread(
        b.uid, b.channel_id, b.channel_type, caller
    )
    return OK


async def set_unread(call: Call[SetUnreadRequest]) -> StatusResponse:
    b = call.body
    caller = own_uid(call, b.uid)
    await services(call.request).conversations.set_unread(
        b.uid, b.channel_id, b.channel_type, b.unread, caller
    )
    return OK


async def delete(call: Call[DeleteConversationRequest]) -> StatusResponse:
    b = call.body
    own_uid(call, b.uid)
    await services(call.request).conversations.delete(
        b.uid, b.channel_id, b.channel_type
    )
    return OK


ROUTES = [
    Route(
        "POST",
        "/conversation/sync",
        sync,
        body=ConversationSyncRequest,
        response=list[Conversation],
        access=Access.USER,
        summary="A user's conversations with unread counts and recent messages",
    ),
    Route(
        "POST",
        "/conversation/syncByChannels",
        sync_by_channels,
        body=SyncByChannelsRequest,
        response=list[Conversation],
        access=Access.USER,
        summary="Conversations of the given channels",
    ),
    Route(
        "POST",
        "/conversation/channels",
        channels,
        body=ConversationChannelsRequest,
        response=list[ConversationChannel],
        access=Access.USER,
        summary="The channels a user has conversations in",
    ),
    Route(
        "POST",
        "/conversations/clearUnread",
        clear_unread,
        body=ClearUnreadRequest,
        response=StatusResponse,
        access=Access.USER,
        summary="Mark a conversation read up to the channel's last message",
    ),
    Route(
        "POST",
        "/conversations/setUnread",
        set_unread,
        body=SetUnreadRequest,
        response=StatusResponse,
        access=Access.USER,
        summary="Move the read cursor to leave `unread` messages (forward only)",
    ),
    Route(
        "POST",
        "/conversations/delete",
        delete,
        body=DeleteConversationRequest,
        response=StatusResponse,
        access=Access.USER,
        summary="Hide a conversation until a newer message arrives",
    ),
]
