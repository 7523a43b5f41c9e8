"""Message routes: send, channel sync and lookups (WuKongIM v2 paths)."""

from __future__ import annotations

from typing import Any

import msgspec

from broker import access
from broker.errors import ApiError, Reason, bad_request
from broker.http.context import USER_SEND_LIMITS, services
from broker.http.routing import Access, Call, Route
from broker.messages import client_sender, http_sender
from broker.protocol import (
    CmdSyncAckRequest,
    CmdSyncRequest,
    EncodedSyncResponse,
    HealthResponse,
    MaxSeqResponse,
    MessageRequest,
    MessageResp,
    MessagesRequest,
    MessagesResponse,
    MessageSyncRequest,
    MessageSyncResponse,
    SendBatchRequest,
    SendBatchResponse,
    SendRequest,
    SendResponse,
    StatusResponse,
)

OK = StatusResponse(status=200)


class ChannelQuery(msgspec.Struct, frozen=True, kw_only=True):
    channel_id: str = ""
    channel_type: int = 0
    login_uid: str = ""


class ClientMsgNoQuery(msgspec.Struct, frozen=True, kw_only=True):
    channel_id: str = ""
    channel_type: int = 0
    client_msg_no: str = ""


async def health(call: Call[None]) -> HealthResponse:
    return HealthResponse(status="ok")


async def send(call: Call[SendRequest]) -> SendResponse:
    svc = services(call.request)
    caller = call.caller
    if caller.is_manager:
        sender = http_sender(call.body.from_uid)
    else:
        uid = caller.uid or ""
        if not call.request.app[USER_SEND_LIMITS].take(uid):
            raise ApiError(429, "rate limit: too many sends", Reason.RATE_LIMIT)
        sender = client_sender(uid, call.body.from_uid)
    result = await svc.messages.send(call.body, sender)
    return SendResponse(data=result)


async def require_reader(
    call: Call[Any], login_uid: str, channel_id: str, channel_type: int
) -> None:
    svc = services(call.request)
    await access.require_reader(
        svc.redis, svc.keys, call.caller, login_uid, channel_id, channel_type
    )


async def send_batch(call: Call[SendBatchRequest]) -> SendBatchResponse:
    return await services(call.request).messages.send_batch(call.body)


async def message_sync(call: Call[MessageSyncRequest]) -> EncodedSyncResponse:
    q = call.body
    await require_reader(call, q.login_uid, q.channel_id, q.channel_type)
    # The same JSON as MessageSyncResponse, with the messages encoded once.
    return await services(call.request).history.sync_encoded(call.body)


async def max_message_seq(call: Call[ChannelQuery]) -> MaxSeqResponse:
    q = call.body
    await require_reader(call, q.login_uid, q.channel_id, q.channel_type)
    seq = await services(call.request).history.max_seq(
        q.channel_id, q.channel_type, q.login_uid
    )
    return MaxSeqResponse(message_seq=seq)


async def last_message(call: Call[ChannelQuery]) -> MessageResp:
    q = call.body
    await require_reader(call, q.login_uid, q.channel_id, q.channel_type)
    return await services(call.request).history.last_message(
        q.channel_id, q.channel_type, q.login_uid
    )


async def messages(call: Call[MessagesRequest]) -> MessagesResponse:
    q = call.body
    await require_reader(call, q.login_uid, q.channel_id, q.channel_type)
    return await services(call.request).history.lookup(call.body)


async def message(call: Call[MessageRequest]) -> MessageResp:
    q = call.body
    await require_reader(call, q.login_uid, q.channel_id, q.channel_type)
    return await services(call.request).history.find(
        q.channel_id,
        q.channel_type,
        q.login_uid,
        message_id=q.message_id,
        client_msg_no=q.client_msg_no,
    )


async def by_client_msg_no(call: Call[ClientMsgNoQuery]) -> MessageResp:
    q = call.body
    if not q.client_msg_no:
        raise bad_request("client_msg_no is required")
    return await services(call.request).history.find(
        q.channel_id, q.channel_type, "", client_msg_no=q.client_msg_no
    )


async def cmd_sync(call: Call[CmdSyncRequest]) -> list[MessageResp]:
    # Commands are never stored (DESIGN §2): there is nothing to pull.
    return []


async def cmd_sync_ack(call: Call[CmdSyncAckRequest]) -> StatusResponse:
    return OK


ROUTES = [
    Route(
        "GET",
        "/health",
        health,
        response=HealthResponse,
        access=Access.PUBLIC,
        summary="Liveness",
    ),
    Route(
        "POST",
        "/message/send",
        send,
        body=SendRequest,
        response=SendResponse,
        access=Access.USER,
        summary="Send one message; replies after it is stored",
    ),
    Route(
        "POST",
        "/message/sendbatch",
        send_batch,
        body=SendBatchRequest,
        response=SendBatchResponse,
        summary="One person message to each uid",
    ),
    Route(
        "POST",
        "/channel/messagesync",
        message_sync,
        body=MessageSyncRequest,
        response=MessageSyncResponse,
        access=Access.USER,
        summary="Read a channel's messages by seq",
    ),
    Route(
        "GET",
        "/channel/max_message_seq",
        max_message_seq,
        query=ChannelQuery,
        response=MaxSeqResponse,
        access=Access.USER,
        summary="Last seq of a channel",
    ),
    Route(
        "GET",
        "/channel/last_message",
        last_message,
        query=ChannelQuery,
        response=MessageResp,
        access=Access.USER,
        summary="Last stored message of a channel",
    ),
    Route(
        "POST",
        "/messages",
        messages,
        body=MessagesRequest,
        response=MessagesResponse,
        access=Access.USER,
        summary="Messages by seqs, ids, client_msg_nos",
    ),
    Route(
        "POST",
        "/message",
        message,
        body=MessageRequest,
        response=MessageResp,
        access=Access.USER,
        summary="One message by id or client_msg_no",
    ),
    Route(
        "GET",
        "/message/byclientmsgno",
        by_client_msg_no,
        query=ClientMsgNoQuery,
        response=MessageResp,
        summary="One message by client_msg_no",
    ),
    Route(
        "POST",
        "/message/sync",
        cmd_sync,
        body=CmdSyncRequest,
        response=list[MessageResp],
        summary="Stored commands: always []",
    ),
    Route(
        "POST",
        "/message/syncack",
        cmd_sync_ack,
        body=CmdSyncAckRequest,
        response=StatusResponse,
        summary="Ack of /message/sync: always ok",
    ),
]
