"""Operator routes on the API port: readiness, metrics, OpenAPI and its docs page."""

from __future__ import annotations

from aiohttp import web

from broker.health import ReadyResponse
from broker.http.context import DOCS_HTML, OPENAPI, READINESS
from broker.http.routing import Access, Call, Route
from broker.ops import metrics_response, readyz_response


async def readyz(call: Call[None]) -> web.Response:
    return await readyz_response(call.request.app[READINESS])


async def metrics(call: Call[None]) -> web.Response:
    return metrics_response()


async def openapi(call: Call[None]) -> web.Response:
    return web.Response(body=call.request.app[OPENAPI], content_type="application/json")


async def docs(call: Call[None]) -> web.Response:
    return web.Response(text=call.request.app[DOCS_HTML], content_type="text/html")


ROUTES = [
    Route(
        "GET",
        "/readyz",
        readyz,
        response=ReadyResponse,
        access=Access.PUBLIC,
        summary="Readiness: Redis answers PING within 0.5 s, scripts loaded, "
        "not draining (503 with the failing checks otherwise)",
    ),
    Route(
        "GET",
        "/metrics",
        metrics,
        access=Access.PUBLIC,
        summary="Prometheus metrics (text format)",
        content_type="text/plain",
    ),
    Route(
        "GET",
        "/openapi.json",
        openapi,
        access=Access.PUBLIC,
        summary="This API as an OpenAPI 3.1 document",
    ),
    Route(
        "GET",
        "/docs",
        docs,
        access=Access.PUBLIC,
        summary="This API as a human-readable page",
        content_type="text/html",
    ),
]
