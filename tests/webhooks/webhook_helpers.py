"""Helpers for webhook tests: events through the producers' seam, fast settings."""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import anyio
import msgspec

from broker.redis_conn import keys_for
from broker.settings import Settings
from broker.webhook_outbox import enqueue_event
from workers.webhooks import run_webhook_sender

SECRET = "whsec-test-0123456789abcdef"


def fast_settings(settings: Settings, url: str, **changes: object) -> Settings:
    """Delivery timings shrunk so retries and batches happen within a test."""
    defaults: dict[str, object] = {
        "webhook_url": url,
        "webhook_secret": SECRET,
        "webhook_backoff_base": 0.02,
        "webhook_timeout": 1.0,
        "webhook_batch_interval": 0.1,
        "webhook_reclaim_after": 0.5,
    }
    defaults.update(changes)
    return msgspec.structs.replace(settings, **defaults)


@asynccontextmanager
async def running_sender(settings: Settings, redis) -> AsyncIterator[None]:
    async with anyio.create_task_group() as tg:
        tg.start_soon(run_webhook_sender, settings, redis)
        yield
        tg.cancel_scope.cancel()


def notify_event(i: int) -> tuple[str, str, bytes]:
    body = {"message_id": i, "message_seq": i, "channel_id": "g1", "channel_type": 2}
    return f"n-{i}", "msg.notify", json.dumps(body).encode()


def offline_event(i: int, to_uids: list[str] | None = None) -> tuple[str, str, bytes]:
    body = {"message_id": i, "channel_id": "g1", "to_uids": to_uids or [f"u{i}"]}
    return f"o-{i}", "msg.offline", json.dumps(body).encode()


def status_event(i: int) -> tuple[str, str, bytes]:
    return f"s-{i}", "user.onlinestatus", json.dumps(f"u{i}-1-1-{i}-1-1").encode()


async def enqueue(redis, settings: Settings, events: Iterable[tuple[str, str, bytes]]):
    """Queue events through the producers' seam, in one round trip."""
    keys = keys_for(settings)
    async with redis.pipeline(transaction=False) as pipe:
        for event_id, event, body in events:
            enqueue_event(pipe, keys, event_id, event, body)
        await pipe.execute()


def event_ids_in(event: str, body: bytes) -> list[str]:
    """The producer event ids a delivered body carries (see the *_event helpers)."""
    data = json.loads(body)
    if event == "msg.notify":
        return [f"n-{m['message_id']}" for m in data]
    if event == "msg.offline":
        return [f"o-{data['message_id']}"]
    if event == "user.onlinestatus":
        return [f"s-{line.split('-')[3]}" for line in data]
    raise AssertionError(event)


async def wait_until(predicate, timeout: float, what: str, explain=None) -> None:
    """Poll ``predicate`` (sync or async) until true; fail with ``what`` (and the
    state ``explain()`` describes) on timeout."""
    deadline = anyio.current_time() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if anyio.current_time() > deadline:
            state = "" if explain is None else f"; {await explain()}"
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what}{state}"
            )
        await anyio.sleep(0.02)
