"""One signed webhook POST with aiohttp: bounded time, no redirects."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from broker import __version__
from workers.webhook_policy import is_delivered
from workers.webhook_signature import ATTEMPT_HEADER, signed_headers

# Connecting may take at most this share of the budget; the whole attempt (connect,
# send, the receiver's processing, the answer) is bounded by the total.
CONNECT_SHARE = 1 / 2


@dataclass(frozen=True, slots=True)
class PostResult:
    delivered: bool
    detail: str  # "HTTP 503", "timeout", "ClientConnectorError: ..."


def new_session(*, timeout: float, concurrency: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=timeout, connect=timeout * CONNECT_SHARE),
        connector=aiohttp.TCPConnector(limit=concurrency),
        headers={"User-Agent": f"jindou-webhook/{__version__}"},
        auto_decompress=False,
    )


async def post_event(
    session: aiohttp.ClientSession,
    url: str,
    *,
    event: str,
    delivery_id: str,
    body: bytes,
    secret: str,
    attempt: int,
) -> PostResult:
    """POST ``url?event=<event>``. Never raises for receiver trouble: every failure
    becomes a PostResult the retry policy can act on."""
    headers = signed_headers(secret, delivery_id, body)
    headers[ATTEMPT_HEADER] = str(attempt)
    headers["Content-Type"] = "application/json"
    try:
        async with session.post(
            url,
            params={"event": event},
            data=body,
            headers=headers,
            allow_redirects=False,
        ) as resp:
            # The receiver's answer body is irrelevant; do not read a large one.
            resp.release()
            return PostResult(is_delivered(resp.status), f"HTTP {resp.status}")
    except TimeoutError:
        return PostResult(False, "timeout")
    except aiohttp.ClientError as exc:
        return PostResult(False, f"{type(exc).__name__}: {exc}"[:300])
