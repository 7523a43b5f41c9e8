"""Webhook signatures: HMAC-SHA256 over ``id.timestamp.body``. Pure (stdlib only).

A receiver copies :func:`verify` (or imports it): it recomputes the signature with the
shared secret and refuses deliveries whose timestamp is more than five minutes away
from its own clock, so a captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
ATTEMPT_HEADER = "webhook-attempt"
SIGNATURE_VERSION = "v1"
REPLAY_WINDOW_SECONDS = 300


def signature(secret: str, delivery_id: str, timestamp: int, body: bytes) -> str:
    """``v1=<hex HMAC-SHA256 of "<id>.<timestamp>.<body>">``."""
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def signed_headers(
    secret: str, delivery_id: str, body: bytes, *, now: float | None = None
) -> dict[str, str]:
    """The id and timestamp headers, plus the signature when a secret is set."""
    timestamp = int(time.time() if now is None else now)
    headers = {ID_HEADER: delivery_id, TIMESTAMP_HEADER: str(timestamp)}
    if secret:
        headers[SIGNATURE_HEADER] = signature(secret, delivery_id, timestamp, body)
    return headers


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    window: int = REPLAY_WINDOW_SECONDS,
) -> bool:
    """Reference verifier for receivers: True only for an authentic, fresh delivery.

    ``headers`` must look names up case-insensitively (aiohttp's and most frameworks'
    header mappings do). The signature header may hold several space-separated
    ``v1=<hex>`` values (during a secret rotation); any match is enough.
    """
    delivery_id = headers.get(ID_HEADER, "")
    stamp = headers.get(TIMESTAMP_HEADER, "")
    if not secret or not delivery_id or not stamp.isdigit():
        return False
    timestamp = int(stamp)
    current = time.time() if now is None else now
    if abs(current - timestamp) > window:
        return False
    expected = signature(secret, delivery_id, timestamp, body)
    offered = headers.get(SIGNATURE_HEADER, "").split()
    return any(hmac.compare_digest(expected, value) for value in offered)
