"""The aiohttp application: route table, error mapping, lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import msgspec
from aiohttp import web
from redis.exceptions import BusyLoadingError, ReadOnlyError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from broker import __version__
from broker.docs_page import render_docs
from broker.errors import ApiError
from broker.health import Readiness, redis_ping_check, scripts_loaded_check
from broker.http import (
    cors,
    routes_channel,
    routes_conversation,
    routes_message,
    routes_ops,
    routes_presence,
    routes_route,
    routes_user,
)
from broker.http.context import (
    DOCS_HTML,
    OPENAPI,
    READINESS,
    SERVICES,
    USER_SEND_LIMITS,
)
from broker.http.observe import UNMATCHED, observed
from broker.http.routing import Route, bind, error_response
from broker.metrics import REDIS_ERRORS
from broker.openapi import build_openapi
from broker.services import Services, close_services, open_services
from broker.settings import Settings, parse_origins
from broker.user_limits import UserSendLimits

log = logging.getLogger(__name__)

ROUTES: list[Route] = [
    *routes_message.ROUTES,
    *routes_channel.ROUTES,
    *routes_user.ROUTES,
    *routes_conversation.ROUTES,
    *routes_presence.ROUTES,
    *routes_route.ROUTES,
    *routes_ops.ROUTES,
]

_UNAVAILABLE = (
    RedisConnectionError,
    RedisTimeoutError,
    BusyLoadingError,
    ReadOnlyError,
)
_HTTP_MESSAGES = {
    404: "no such route",
    405: "method not allowed on this route",
    413: "request body too large",
}


def error_answer(request: web.Request, exc: Exception) -> web.StreamResponse:
    """Every failure becomes ``{"status", "msg"}``; never a traceback."""
    if isinstance(exc, ApiError):
        return error_response(exc.status, exc.msg, exc.reason_code)
    if isinstance(exc, msgspec.ValidationError | msgspec.DecodeError):
        return error_response(400, f"invalid request: {exc}")
    if isinstance(exc, UnicodeError):
        return error_response(400, "invalid request: the body is not valid UTF-8")
    if isinstance(exc, _UNAVAILABLE):
        REDIS_ERRORS.labels("http").inc()
        log.warning("redis unavailable during %s %s", request.method, request.path)
        return error_response(503, "storage is unavailable; nothing was stored")
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        msg = _HTTP_MESSAGES.get(exc.status, exc.reason)
        return error_response(exc.status, msg)
    log.error("unexpected error in %s %s", request.method, request.path, exc_info=exc)
    return error_response(500, "internal error")


def allowed_methods(routes: list[Route]) -> dict[str, frozenset[str]]:
    """Path → the methods it answers."""
    allowed: dict[str, set[str]] = {}
    for route in routes:
        allowed.setdefault(route.path, set()).add(route.method)
    return {path: frozenset(methods) for path, methods in allowed.items()}


def not_routed(routes: list[Route]) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The catch-all answer: 405 on a known path, else 404."""
    allowed = allowed_methods(routes)

    async def answer(request: web.Request) -> web.Response:
        methods = allowed.get(request.path)
        if methods is None:
            return error_response(404, _HTTP_MESSAGES[404])
        response = error_response(405, _HTTP_MESSAGES[405])
        response.headers["Allow"] = ",".join(sorted(methods))
        return response

    return answer


def _add_checks(readiness: Readiness, services: Services) -> None:
    readiness.add("redis", redis_ping_check(services.redis))
    readiness.add(
        "scripts",
        scripts_loaded_check(services.redis, services.store.scripts.registered),
    )


def create_app(settings: Settings, services: Services | None = None) -> web.Application:
    """The HTTP API. With ``services`` given (``jindou api``, shared with the
    gateway) the caller opens, renews and closes them; otherwise the app does."""
    # No middlewares: each route is wrapped once here (see observe.py).
    app = web.Application(client_max_size=settings.max_body)
    app[READINESS] = Readiness()
    app[USER_SEND_LIMITS] = UserSendLimits(
        settings.user_send_rate, settings.user_send_burst
    )
    spec = build_openapi(
        ROUTES,
        title="Jindou",
        version=__version__,
        description="IM message broker speaking WuKongIM's HTTP API.",
    )
    app[OPENAPI] = msgspec.json.encode(spec)
    app[DOCS_HTML] = render_docs(spec)

    async def check_user(uid: str, token: str) -> bool:
        svc = app[SERVICES]
        return await svc.users.token_valid(uid, token)

    for route in ROUTES:
        handler = bind(route, settings.manager_token, check_user)
        app.router.add_route(
            route.method, route.path, observed(route.path, handler, error_answer)
        )
    origins = parse_origins(settings.cors_origins)
    if origins:
        cors.install(app, origins, allowed_methods(ROUTES))
    # Last, so it only answers what no route matched (404, or 405 on a known path).
    app.router.add_route(
        "*", "/{tail:.*}", observed(UNMATCHED, not_routed(ROUTES), error_answer)
    )

    if services is not None:
        app[SERVICES] = services
        _add_checks(app[READINESS], services)
        return app

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        services = await open_services(settings)
        app[SERVICES] = services
        _add_checks(app[READINESS], services)
        # aiohttp resumes this generator from another task at cleanup, so a task
        # group cannot span the yield; this is aiohttp's background-task pattern.
        renewal = asyncio.create_task(services.lease.renew_forever())
        yield
        renewal.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewal
        await close_services(services)

    app.cleanup_ctx.append(lifecycle)
    return app
