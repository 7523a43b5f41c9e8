"""Channel routes: channels, subscribers, black/white lists (WuKongIM v2 paths)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from broker.admin_protocol import (
    ChannelCreateRequest,
    ChannelFlags,
    ChannelListRequest,
    ChannelRequest,
    SubscriberAddRequest,
    SubscriberRemoveRequest,
    WhitelistEntry,
)
from broker.channel_admin import ListKind, ListOp
from broker.channels import ChannelType
from broker.errors import Reason
from broker.gateway.control import ALL_DEVICES, Kick, publish_kick
from broker.http.context import services
from broker.http.routing import Call, Route
from broker.protocol import StatusResponse

OK = StatusResponse(status=200)


async def upsert(call: Call[ChannelCreateRequest]) -> StatusResponse:
    await services(call.request).channels.upsert(call.body)
    await _kick_if_user_banned(call.request, call.body)
    return OK


async def set_info(call: Call[ChannelFlags]) -> StatusResponse:
    await services(call.request).channels.set_info(call.body)
    await _kick_if_user_banned(call.request, call.body)
    return OK


async def _kick_if_user_banned(request: web.Request, flags: ChannelFlags) -> None:
    """``ban=1`` on a user's own person channel bans the user: his connects are
    refused from now on, and the ones he holds are closed (reason 19) on every
    node, so a ban takes effect at once."""
    if flags.channel_type != ChannelType.PERSON or flags.ban != 1:
        return
    svc = services(request)
    kick = Kick(
        uid=flags.channel_id,
        device_flag=ALL_DEVICES,
        reason_code=Reason.BAN,
        reason="banned",
    )
    await publish_kick(svc.redis, svc.keys, kick)


async def delete(call: Call[ChannelRequest]) -> StatusResponse:
    await services(call.request).channels.delete(call.body)
    return OK


async def subscriber_add(call: Call[SubscriberAddRequest]) -> StatusResponse:
    await services(call.request).channels.add_subscribers(call.body)
    return OK


async def subscriber_remove(call: Call[SubscriberRemoveRequest]) -> StatusResponse:
    await services(call.request).channels.remove_subscribers(call.body)
    return OK


async def subscriber_remove_all(call: Call[ChannelRequest]) -> StatusResponse:
    await services(call.request).channels.remove_all_subscribers(call.body)
    return OK


async def whitelist(call: Call[ChannelRequest]) -> list[WhitelistEntry]:
    return await services(call.request).channels.whitelist(call.body)


def list_handler(
    kind: ListKind, op: ListOp
) -> Callable[[Call[ChannelListRequest]], Awaitable[StatusResponse]]:
    async def change(call: Call[ChannelListRequest]) -> StatusResponse:
        await services(call.request).channels.change_list(kind, op, call.body)
        return OK

    return change


def _list_routes() -> list[Route]:
    return [
        Route(
            "POST",
            f"/channel/{kind.value}_{op.value}",
            list_handler(kind, op),
            body=ChannelListRequest,
            response=StatusResponse,
            summary=f"{kind.value}: {op.value.replace('_', ' ')}",
        )
        for kind in ListKind
        for op in ListOp
    ]


ROUTES = [
    Route(
        "POST",
        "/channel",
        upsert,
        body=ChannelCreateRequest,
        response=StatusResponse,
        summary="Create or update a channel: flags (all overwritten), subscribers",
    ),
    Route(
        "POST",
        "/channel/info",
        set_info,
        body=ChannelFlags,
        response=StatusResponse,
        summary="Overwrite a channel's flags",
    ),
    Route(
        "POST",
        "/channel/delete",
        delete,
        body=ChannelRequest,
        response=StatusResponse,
        summary="Delete a channel with its messages, members and lists",
    ),
    Route(
        "POST",
        "/channel/subscriber_add",
        subscriber_add,
        body=SubscriberAddRequest,
        response=StatusResponse,
        summary="Add subscribers (reset=1 replaces them)",
    ),
    Route(
        "POST",
        "/channel/subscriber_remove",
        subscriber_remove,
        body=SubscriberRemoveRequest,
        response=StatusResponse,
        summary="Remove subscribers and their conversations",
    ),
    Route(
        "POST",
        "/channel/subscriber_remove_all",
        subscriber_remove_all,
        body=ChannelRequest,
        response=StatusResponse,
        summary="Remove every subscriber",
    ),
    *_list_routes(),
    Route(
        "GET",
        "/channel/whitelist",
        whitelist,
        query=ChannelRequest,
        response=list[WhitelistEntry],
        summary="A channel's whitelist",
    ),
]
