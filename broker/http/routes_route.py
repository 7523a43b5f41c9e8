"""Where clients connect: ``GET /route`` and ``POST /route/batch`` (reference §7).

A business server asks these for the address to hand its app's SDK. Every api
node serves every user (presence and deliveries go through Redis), so the answer
is one address for all uids: the WebSocket gateway, or the load balancer in front
of the nodes (``JINDOU_EXTERNAL_WS_ADDR`` / ``JINDOU_EXTERNAL_WSS_ADDR``). Jindou
speaks only the WebSocket JSON-RPC protocol, so ``tcp_addr`` (WuKongIM's binary
protocol) is always empty.
"""

from __future__ import annotations

import ipaddress

import msgspec
from aiohttp import web

from broker.channel_admin import checked_uids
from broker.http.context import services
from broker.http.routing import Call, Route
from broker.settings import Settings, split_addr

# Listening on every interface says nothing of how clients reach the node.
_ANY_HOST = {"0.0.0.0", "::", ""}  # noqa: S104 - compared with, never bound


class RouteQuery(msgspec.Struct, frozen=True, kw_only=True):
    uid: str = ""  # accepted and not used, as by WuKongIM: one address for all
    intranet: int = 0  # 1: the address inside the deployment, not the public one


class ClientAddresses(msgspec.Struct, frozen=True, kw_only=True):
    tcp_addr: str = ""
    ws_addr: str = ""
    wss_addr: str = ""


class UidsAddresses(ClientAddresses, frozen=True, kw_only=True):
    uids: list[str] = msgspec.field(default_factory=list)


def _url_host(host: str) -> str:
    """``host`` as it goes into a URL: IPv6 literals in brackets."""
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]"
    except ValueError:
        pass  # a name
    return host


def client_addresses(
    settings: Settings, request_host: str, *, intranet: bool
) -> ClientAddresses:
    """The addresses to give a client. Pure.

    ``request_host`` (the host the caller reached the API by) stands in for a
    gateway that listens on every interface."""
    host, port = split_addr(settings.ws_addr)
    if host in _ANY_HOST:
        host = request_host or "127.0.0.1"
    internal = f"ws://{_url_host(host)}:{port}"
    if intranet:
        return ClientAddresses(ws_addr=internal)
    return ClientAddresses(
        ws_addr=settings.external_ws_addr or internal,
        wss_addr=settings.external_wss_addr,
    )


def _addresses(request: web.Request, intranet: bool) -> ClientAddresses:
    return client_addresses(
        services(request).settings, request.url.host or "", intranet=intranet
    )


async def route(call: Call[RouteQuery]) -> ClientAddresses:
    return _addresses(call.request, bool(call.body.intranet))


async def route_batch(call: Call[list[str]]) -> list[UidsAddresses]:
    """One entry for all the given uids (every node serves every user)."""
    settings = services(call.request).settings
    uids = checked_uids(call.body, "uids", settings.max_list)
    query = msgspec.convert(dict(call.request.query), RouteQuery, strict=False)
    found = _addresses(call.request, bool(query.intranet))
    return [
        UidsAddresses(
            tcp_addr=found.tcp_addr,
            ws_addr=found.ws_addr,
            wss_addr=found.wss_addr,
            uids=uids,
        )
    ]


ROUTES = [
    Route(
        "GET",
        "/route",
        route,
        query=RouteQuery,
        response=ClientAddresses,
        summary="The address a client's SDK connects to",
    ),
    Route(
        "POST",
        "/route/batch",
        route_batch,
        body=list[str],
        response=list[UidsAddresses],
        summary="The address the given uids' clients connect to",
    ),
]
