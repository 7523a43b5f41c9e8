"""CORS for browser apps that call the API with a user's own credentials.

Off unless ``JINDOU_CORS_ORIGINS`` names the origins (comma-separated, or ``*``):
then preflight ``OPTIONS`` requests of known paths are answered, and every answer
to an allowed origin carries ``Access-Control-Allow-Origin``. WuKongIM installs an
allow-all CORS middleware; here it is opt-in, because the manager token does not
belong in a browser. Off, it costs nothing: no handler, no response hook.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from broker.settings import ANY_ORIGIN

# The headers a browser may send: the credentials (routing.py), the request id.
ALLOW_HEADERS = "content-type, token, uid, x-request-id"
EXPOSE_HEADERS = "x-request-id, retry-after"
MAX_AGE_S = "600"


def allowed_origin(origin: str | None, origins: frozenset[str]) -> str | None:
    """The ``Access-Control-Allow-Origin`` value for a request's ``Origin``. Pure."""
    if not origin:
        return None
    if ANY_ORIGIN in origins:
        return ANY_ORIGIN
    return origin if origin in origins else None


def preflight_headers(allow: str, methods: frozenset[str]) -> dict[str, str]:
    return {
        "Access-Control-Allow-Origin": allow,
        "Access-Control-Allow-Methods": ", ".join(sorted(methods)),
        "Access-Control-Allow-Headers": ALLOW_HEADERS,
        "Access-Control-Max-Age": MAX_AGE_S,
        "Vary": "Origin",
    }


def install(
    app: web.Application, origins: frozenset[str], paths: Mapping[str, frozenset[str]]
) -> None:
    """Answer preflights of ``paths`` (path → its methods) and mark the answers."""
    for path, methods in paths.items():
        app.router.add_route("OPTIONS", path, _preflight(origins, methods))

    async def mark(request: web.Request, response: web.StreamResponse) -> None:
        allow = allowed_origin(request.headers.get("Origin"), origins)
        if allow is not None and request.method != "OPTIONS":
            response.headers["Access-Control-Allow-Origin"] = allow
            response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
            response.headers.add("Vary", "Origin")

    app.on_response_prepare.append(mark)


def _preflight(
    origins: frozenset[str], methods: frozenset[str]
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def answer(request: web.Request) -> web.Response:
        allow = allowed_origin(request.headers.get("Origin"), origins)
        if allow is None:
            # Not a preflight from an allowed origin: no CORS headers, so the
            # browser refuses the real request.
            return web.Response(status=204, headers={"Vary": "Origin"})
        return web.Response(status=204, headers=preflight_headers(allow, methods))

    return answer
