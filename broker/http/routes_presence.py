"""Presence routes of the gateway: ``/user/device_quit``, ``/user/onlinestatus``."""

from __future__ import annotations

from typing import Annotated

import msgspec

from broker.channel_admin import checked_uids
from broker.channels import InvalidId, check_id
from broker.errors import bad_request
from broker.gateway.control import ALL_DEVICES, Kick, publish_kick
from broker.gateway.presence import Presence
from broker.http.context import services
from broker.http.routing import Call, Route
from broker.protocol import StatusResponse

QUIT_ALL_FLAGS = ("0", "1", "2")  # device_flag -1: app, web and pc
OK = StatusResponse(status=200)


class DeviceQuitRequest(msgspec.Struct, frozen=True, kw_only=True):
    uid: str = ""
    # WuKongIM device flags are a uint8; -1 means app, web and pc.
    device_flag: Annotated[int, msgspec.Meta(ge=-1, le=255)] = 0


class OnlineStatus(msgspec.Struct, frozen=True, kw_only=True):
    uid: str
    device_flag: int
    online: int = 1


async def device_quit(call: Call[DeviceQuitRequest]) -> StatusResponse:
    """Revoke the device's token, then kick its connections on every node."""
    svc = services(call.request)
    body = call.body
    try:
        uid = check_id(body.uid, "uid")
    except InvalidId as exc:
        raise bad_request(str(exc)) from None
    if body.device_flag < ALL_DEVICES:
        raise bad_request("device_flag must be -1 (all), 0, 1, 2 or another flag")
    flags = (
        QUIT_ALL_FLAGS if body.device_flag == ALL_DEVICES else (str(body.device_flag),)
    )
    await svc.redis.hdel(svc.keys.tokens(uid), *flags)
    await publish_kick(
        svc.redis,
        svc.keys,
        Kick(uid=uid, device_flag=body.device_flag, reason="device quit"),
    )
    return OK


async def online_status(call: Call[list[str]]) -> list[OnlineStatus] | StatusResponse:
    """One entry per live connection of the given uids (reference §7)."""
    svc = services(call.request)
    uids = checked_uids(call.body, "uids", svc.settings.max_list)
    if not uids:
        return OK
    presence = Presence(svc.redis, svc.keys, svc.settings.node_heartbeat_ms)
    return [
        OnlineStatus(uid=uid, device_flag=record.device_flag)
        for uid, records in await presence.connections(uids)
        for record in records
    ]


ROUTES = [
    Route(
        "POST",
        "/user/device_quit",
        device_quit,
        body=DeviceQuitRequest,
        response=StatusResponse,
        summary="Revoke a device's token and disconnect it",
    ),
    Route(
        "POST",
        "/user/onlinestatus",
        online_status,
        body=list[str],
        response=list[OnlineStatus] | StatusResponse,
        summary="Live connections of the given uids",
    ),
]
