"""User routes: device tokens and system uids (WuKongIM v2 paths)."""

from __future__ import annotations

from broker.admin_protocol import UidsRequest, UserTokenRequest
from broker.gateway.control import Kick, publish_kick
from broker.http.context import services
from broker.http.routing import Call, Route
from broker.protocol import StatusResponse

OK = StatusResponse(status=200)
MASTER = 1


async def token(call: Call[UserTokenRequest]) -> StatusResponse:
    svc = services(call.request)
    status = await svc.user_admin.register_token(call.body)
    if status == 200 and call.body.device_level == MASTER:
        # Reference §7: a master token kicks the connections of that device flag.
        kick = Kick(uid=call.body.uid, device_flag=call.body.device_flag)
        await publish_kick(svc.redis, svc.keys, kick)
    return StatusResponse(status=status)


async def systemuids_add(call: Call[UidsRequest]) -> StatusResponse:
    await services(call.request).user_admin.add_system_uids(call.body)
    return OK


async def systemuids_remove(call: Call[UidsRequest]) -> StatusResponse:
    await services(call.request).user_admin.remove_system_uids(call.body)
    return OK


async def systemuids(call: Call[None]) -> list[str]:
    return await services(call.request).user_admin.system_uids()


ROUTES = [
    Route(
        "POST",
        "/user/token",
        token,
        body=UserTokenRequest,
        response=StatusResponse,
        summary="Register a device token (stored hashed); 19 if the user is banned",
    ),
    Route(
        "POST",
        "/user/systemuids_add",
        systemuids_add,
        body=UidsRequest,
        response=StatusResponse,
        summary="Exempt uids from sender permission checks",
    ),
    Route(
        "POST",
        "/user/systemuids_remove",
        systemuids_remove,
        body=UidsRequest,
        response=StatusResponse,
        summary="Remove system uids",
    ),
    Route(
        "GET",
        "/user/systemuids",
        systemuids,
        response=list[str],
        summary="The system uids",
    ),
]
