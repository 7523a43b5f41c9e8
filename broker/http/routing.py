"""A small typed route table over aiohttp.

Each route names its body or query type and its response type, so the same table
registers the handlers, decodes and validates input with msgspec, checks auth,
and (later) generates the OpenAPI document.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Generic, TypeVar

import msgspec
from aiohttp import web

from broker.errors import ApiError

B = TypeVar("B")

json_encode = msgspec.json.Encoder().encode


class Access(Enum):
    PUBLIC = "public"  # no credentials (health)
    MANAGER = "manager"  # the manager token only
    USER = "user"  # the manager token, or a user's own `uid` + `token` headers


@dataclass(frozen=True, slots=True)
class Caller:
    """Who calls: the manager (``uid is None``) or one authenticated user."""

    uid: str | None = None

    @property
    def is_manager(self) -> bool:
        return self.uid is None


MANAGER = Caller()

# Checks a user's (uid, token); returns True if valid. Bound per app.
TokenCheck = Callable[[str, str], Awaitable[bool]]


class Call(msgspec.Struct, Generic[B], frozen=True):
    """What a handler gets: the raw request, the decoded input and the caller.
    A Struct, not a dataclass: one is made per request (several times cheaper)."""

    request: web.Request
    body: B
    caller: Caller = MANAGER


Handler = Callable[[Call[Any]], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    body: Any = None  # msgspec type of the JSON body (POST)
    query: Any = None  # msgspec Struct of the query string (GET)
    response: Any = None
    access: Access = Access.MANAGER
    summary: str = ""
    # What a 200 answer is; non-JSON routes (metrics, docs) return a web.Response.
    content_type: str = "application/json"


# A header dict rather than ``content_type=``: aiohttp then skips parsing and
# rebuilding the header on every response.
_JSON_HEADERS = {"Content-Type": "application/json"}


def json_response(value: Any, status: int = 200) -> web.Response:
    return web.Response(body=json_encode(value), status=status, headers=_JSON_HEADERS)


def error_response(status: int, msg: str, reason_code: int = 0) -> web.Response:
    body: dict[str, Any] = {"status": status, "msg": msg}
    if reason_code:
        body["reason_code"] = reason_code
    return json_response(body, status)


def is_manager_token(given: str, manager_token: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), manager_token.encode())


async def authenticate(
    request: web.Request, access: Access, manager_token: str, check_user: TokenCheck
) -> Caller:
    given = request.headers.get("token", "")
    if access is Access.PUBLIC or is_manager_token(given, manager_token):
        return MANAGER
    return await authenticate_user(request, access, given, check_user)


async def authenticate_user(
    request: web.Request, access: Access, given: str, check_user: TokenCheck
) -> Caller:
    """The caller when the request does not carry the manager token."""
    if access is Access.USER:
        uid = request.headers.get("uid", "")
        if uid and given and await check_user(uid, given):
            return Caller(uid)
        raise ApiError(
            401,
            "the manager token, or a user's 'uid' and 'token' headers, are required",
        )
    raise ApiError(401, "a valid manager token is required in the 'token' header")


def _decoder(body_type: Any) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(body_type)


def bind(
    route: Route, manager_token: str, check_user: TokenCheck
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Wrap a route's handler: auth, then decode, call, encode."""
    decoder = _decoder(route.body) if route.body is not None else None
    access = route.access
    public = access is Access.PUBLIC

    async def handle(request: web.Request) -> web.Response:
        # The manager token needs no await: most calls are the app's backend.
        given = request.headers.get("token", "")
        if public or is_manager_token(given, manager_token):
            caller = MANAGER
        else:
            caller = await authenticate_user(request, access, given, check_user)
        body: Any = None
        if decoder is not None:
            raw = await request.read()
            if not raw.strip():
                raise ApiError(400, "a JSON request body is required")
            body = decoder.decode(raw)
        elif route.query is not None:
            body = msgspec.convert(dict(request.query), route.query, strict=False)
        result = await route.handler(Call(request, body, caller))
        if isinstance(result, web.StreamResponse):
            return result  # type: ignore[return-value]
        return json_response(result)

    return handle
