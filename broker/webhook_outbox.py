"""Producers' side of the durable webhook outbox (docs/design-notes.md)."""

from __future__ import annotations

from typing import Any

from broker.keys import Keys


def enqueue_event(
    client: Any, keys: Keys, event_id: str, event: str, body: bytes
) -> Any:
    """Queue one event; ``client`` may be a pipeline. Ids are deterministic, so a
    redelivered dispatch entry enqueues the same id and receivers de-duplicate."""
    return client.xadd(keys.webhook_outbox, {"id": event_id, "e": event, "d": body})
