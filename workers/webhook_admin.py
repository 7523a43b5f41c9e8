"""``jindou webhooks replay``: re-queue dead-lettered deliveries."""

from __future__ import annotations

import sys

from broker.redis_conn import connect, keys_for
from broker.settings import Settings
from workers.webhook_store import WebhookStore
from workers.webhooks import now_ms

PAGE = 500


async def replay_dead_letters(settings: Settings, *, limit: int | None = None) -> int:
    """Move dead letters (oldest first) back into the job queue under their old
    delivery ids; running workers send them. Returns how many were re-queued."""
    redis = connect(settings.redis_url)
    try:
        store = WebhookStore(redis, keys_for(settings))
        replayed = 0
        while limit is None or replayed < limit:
            page = PAGE if limit is None else min(PAGE, limit - replayed)
            letters = await store.dead_letters(limit=page)
            if not letters:
                break
            for letter in letters:
                replayed += await store.replay(letter, now_ms=now_ms())
        return replayed
    finally:
        await redis.aclose()


async def print_replay(settings: Settings, *, limit: int | None) -> None:
    replayed = await replay_dead_letters(settings, limit=limit)
    sys.stdout.write(f"re-queued {replayed} dead-lettered webhook deliveries\n")
    if replayed and not settings.webhook_url:
        sys.stdout.write(
            "note: JINDOU_WEBHOOK_URL is not set here; workers that have it set "
            "send them\n"
        )
