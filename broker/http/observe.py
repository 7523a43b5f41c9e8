"""HTTP middleware for operators: request id, access log line, request metrics.

Outermost middleware, so it sees the final status of every answer (including the
JSON errors made by ``errors_as_json``). Labels use the matched route's path template,
never the raw path, so user input cannot grow the number of series.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from broker.logs import REQUEST_ID
from broker.metrics import HTTP_REQUEST_SECONDS, HTTP_REQUESTS

REQUEST_ID_HEADER = "X-Request-Id"
UNMATCHED = "unmatched"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,64}")

access_log = logging.getLogger("jindou.access")

RequestHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def request_id_from(header: str | None) -> str:
    """The caller's ``X-Request-Id`` when it is a sane token, else a new id."""
    if header and _VALID_REQUEST_ID.fullmatch(header):
        return header
    return secrets.token_hex(8)


# Label children per (method, route, status): a bounded set (route templates and
# statuses are finite), so each request costs one dict lookup, not two .labels().
_Children = tuple[Any, Any]
_children: dict[tuple[str, str, int], _Children] = {}


_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


def _metrics_for(method: str, route: str, status: int) -> _Children:
    if method not in _METHODS:
        method = "OTHER"  # any token is a valid HTTP method; keep labels bounded
    key = (method, route, status)
    found = _children.get(key)
    if found is None:
        found = (
            HTTP_REQUESTS.labels(method, route, str(status)),
            HTTP_REQUEST_SECONDS.labels(route),
        )
        _children[key] = found
    return found


def route_template(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


@web.middleware
async def observe(request: web.Request, handler: RequestHandler) -> web.StreamResponse:
    request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
    token = REQUEST_ID.set(request_id)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        if not response.prepared:
            response.headers[REQUEST_ID_HEADER] = request_id
        return response
    except asyncio.CancelledError:  # the client went away
        status = 499
        raise
    except web.HTTPException as exc:  # redirects and the like pass through
        status = exc.status
        exc.headers[REQUEST_ID_HEADER] = request_id
        raise
    finally:
        elapsed = time.perf_counter() - started
        route = route_template(request)
        requests, seconds = _metrics_for(request.method, route, status)
        requests.inc()
        seconds.observe(elapsed)
        access_log.info(
            "%s %s %d %.1fms", request.method, route, status, elapsed * 1000
        )
        REQUEST_ID.reset(token)
