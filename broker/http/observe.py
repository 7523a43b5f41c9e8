"""What every HTTP answer records for operators: request id, access log line, metrics.

:func:`observed` wraps each route's handler (and the catch-all that answers unknown
paths), so it sees the final status of every answer, including the JSON errors made
from exceptions. It is one coroutine per request rather than aiohttp middlewares:
those add several awaits and wrapper objects to every request. Labels use the
route's path template, never the raw path, so user input cannot grow the number of
series.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from broker.logs import REQUEST_ID
from broker.metrics import (
    HTTP_REQUEST_SECONDS,
    HTTP_REQUESTS,
    BufferedCounter,
    buffered_counter,
    buffered_histogram,
)

REQUEST_ID_HEADER = "X-Request-Id"
UNMATCHED = "unmatched"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,64}")
# Request ids need to be unique, not secret: no getrandom() call per request.
_random = random.Random()

access_log = logging.getLogger("jindou.access")

RequestHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Turns an exception of a handler into an answer, or re-raises it.
ErrorAnswer = Callable[[web.Request, Exception], web.StreamResponse]


def request_id_from(header: str | None) -> str:
    """The caller's ``X-Request-Id`` when it is a sane token, else a new id."""
    if header and _VALID_REQUEST_ID.fullmatch(header):
        return header
    return f"{_random.getrandbits(64):016x}"


_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


class RouteMeter:
    """The metric children of one route template, bound once per (method, status):
    a bounded set, so each request costs one dict lookup, not two ``.labels()``."""

    def __init__(self, route: str) -> None:
        self.route = route
        self._seconds = buffered_histogram(HTTP_REQUEST_SECONDS.labels(route))
        self._requests: dict[tuple[str, int], BufferedCounter] = {}

    def record(self, method: str, status: int, seconds: float) -> None:
        if method not in _METHODS:
            method = "OTHER"  # any token is a valid HTTP method; keep labels bounded
        requests = self._requests.get((method, status))
        if requests is None:
            requests = buffered_counter(
                HTTP_REQUESTS.labels(method, self.route, str(status))
            )
            self._requests[method, status] = requests
        requests.inc()
        self._seconds.observe(seconds)


def observed(
    route: str, handler: RequestHandler, on_error: ErrorAnswer
) -> RequestHandler:
    """``handler`` with a request id, errors as answers, metrics and an access line."""
    meter = RouteMeter(route)
    perf_counter = time.perf_counter
    info = logging.INFO

    async def handle(request: web.Request) -> web.StreamResponse:
        request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        token = REQUEST_ID.set(request_id)
        started = perf_counter()
        status = 500
        try:
            try:
                response = await handler(request)
            except Exception as exc:
                response = on_error(request, exc)
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
            elapsed = perf_counter() - started
            meter.record(request.method, status, elapsed)
            if access_log.isEnabledFor(info):
                access_log.info(
                    "%s %s %d %.1fms", request.method, route, status, elapsed * 1000
                )
            REQUEST_ID.reset(token)

    return handle
