"""The webhook sender against a real HTTP receiver and a real Redis."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import anyio
from webhook_helpers import (
    enqueue,
    event_ids_in,
    fast_settings,
    notify_event,
    offline_event,
    running_sender,
    status_event,
    wait_until,
)

from broker.metrics import REGISTRY
from broker.redis_conn import keys_for
from tests.conftest import REPO_ROOT, process_env
from workers.webhook_batches import plan_jobs, uncompress_to_uids
from workers.webhook_store import GROUP, WebhookStore, parse_entries
from workers.webhooks import now_ms, run_webhook_sender


async def drained(redis, settings) -> bool:
    keys = keys_for(settings)
    return (
        await redis.xlen(keys.webhook_outbox) == 0
        and await redis.hlen(keys.webhook_jobs) == 0
        and await redis.zcard(keys.webhook_due) == 0
    )


async def test_notify_batched_up_to_100_per_post_and_flushed_within_interval(
    settings, redis, receiver
):
    settings = fast_settings(
        settings, f"{receiver.url}/hook", webhook_batch_interval=0.3
    )
    async with running_sender(settings, redis):
        await enqueue(redis, settings, [notify_event(i) for i in range(250)])
        await wait_until(lambda: len(receiver.delivered()) >= 3, 10, "three batches")
        # A lone message goes out once the batch interval has passed.
        started = time.monotonic()
        await enqueue(redis, settings, [notify_event(1000)])
        await wait_until(lambda: len(receiver.delivered()) == 4, 5, "lone message")
        lone_latency = time.monotonic() - started
        await wait_until(lambda: drained(redis, settings), 5, "outbox drained")
    hits = receiver.delivered()
    assert {h.event for h in hits} == {"msg.notify"}
    sizes = sorted(len(h.json()) for h in hits)
    assert sizes == [1, 50, 100, 100]
    ids = [eid for h in hits for eid in event_ids_in(h.event, h.body)]
    assert sorted(ids) == sorted([f"n-{i}" for i in range(250)] + ["n-1000"])
    assert all(h.delivery_id.startswith("msg.notify:") for h in hits)
    assert all(h.signature_ok for h in receiver.hits)
    assert 0.3 <= lone_latency < 2.0


async def test_offline_one_post_per_message_with_compressed_long_to_uids(
    settings, redis, receiver
):
    settings = fast_settings(
        settings, f"{receiver.url}/hook", webhook_compress_over=100
    )
    many = [f"member-{i}" for i in range(500)]
    async with running_sender(settings, redis):
        await enqueue(
            redis, settings, [offline_event(1, ["a", "b"]), offline_event(2, many)]
        )
        await wait_until(
            lambda: len(receiver.delivered()) == 2, 10, "two offline posts"
        )
    by_id = {h.delivery_id: h for h in receiver.delivered()}
    assert set(by_id) == {"o-1", "o-2"}
    assert all(h.event == "msg.offline" for h in by_id.values())
    assert by_id["o-1"].json() == {
        "message_id": 1,
        "channel_id": "g1",
        "to_uids": ["a", "b"],
    }
    packed = by_id["o-2"].json()
    assert packed["to_uids"] == []
    assert packed["compress"] == "gzip"
    assert uncompress_to_uids(packed["compress_to_uids"]) == many
    assert all(h.signature_ok for h in receiver.hits)


async def test_onlinestatus_batched_as_array_of_strings(settings, redis, receiver):
    settings = fast_settings(settings, f"{receiver.url}/hook")
    async with running_sender(settings, redis):
        await enqueue(redis, settings, [status_event(i) for i in range(30)])
        await wait_until(
            lambda: sum(len(h.json()) for h in receiver.delivered()) == 30,
            10,
            "30 lines",
        )
    lines = [line for h in receiver.delivered() for line in h.json()]
    assert sorted(lines) == sorted(f"u{i}-1-1-{i}-1-1" for i in range(30))
    assert {h.event for h in receiver.delivered()} == {"user.onlinestatus"}


async def test_event_filter_sends_only_configured_events(settings, redis, receiver):
    settings = fast_settings(
        settings, f"{receiver.url}/hook", webhook_events="msg.offline"
    )
    async with running_sender(settings, redis):
        await enqueue(
            redis,
            settings,
            [notify_event(1), status_event(2), offline_event(3), notify_event(4)],
        )
        await wait_until(lambda: receiver.delivered_ids() == {"o-3"}, 10, "o-3")
        # Filtered events are dropped from the outbox, not left to pile up.
        await wait_until(lambda: drained(redis, settings), 5, "outbox drained")
        await anyio.sleep(3 * settings.webhook_batch_interval)
    assert [h.event for h in receiver.hits] == ["msg.offline"]


async def test_redirects_are_not_followed_and_count_as_failures(
    settings, redis, receiver
):
    settings = fast_settings(
        settings, f"{receiver.url}/redirect", webhook_max_attempts=3
    )
    keys = keys_for(settings)
    async with running_sender(settings, redis):
        await enqueue(redis, settings, [offline_event(5)])
        await wait_until(
            lambda: redis.xlen(keys.webhook_dead), 10, "dead letter after redirects"
        )
    assert [h.path for h in receiver.hits] == ["/redirect"] * 3
    assert [h.attempt for h in receiver.hits] == [1, 2, 3]
    ((_, fields),) = await redis.xrange(keys.webhook_dead)
    assert fields[b"id"] == b"o-5"
    assert fields[b"err"] == b"HTTP 302"
    assert fields[b"n"] == b"3"
    assert fields[b"e"] == b"msg.offline"
    assert await drained(redis, settings)


async def test_timeouts_are_bounded_and_retried_under_the_same_id(
    settings, redis, receiver
):
    settings = fast_settings(settings, f"{receiver.url}/hook", webhook_timeout=0.3)
    slow_once = {"o-6"}
    receiver.latency = lambda delivery_id: 2.0 if delivery_id in slow_once else 0.0
    started = time.monotonic()
    async with running_sender(settings, redis):
        await enqueue(redis, settings, [offline_event(6), offline_event(7)])
        await wait_until(lambda: "o-7" in receiver.delivered_ids(), 5, "o-7")
        # o-7 was not held up by o-6's hanging receiver.
        assert time.monotonic() - started < 1.5
        slow_once.clear()
        await wait_until(lambda: "o-6" in receiver.delivered_ids(), 5, "o-6 retried")
    retried = [h for h in receiver.hits if h.delivery_id == "o-6"]
    assert retried[-1].attempt >= 2
    assert retried[-1].status == 200
    assert len({h.body for h in retried}) == 1


async def test_failures_are_retried_with_backoff_then_dead_lettered(
    settings, redis, receiver
):
    settings = fast_settings(settings, f"{receiver.url}/hook", webhook_max_attempts=5)
    keys = keys_for(settings)
    receiver.fail_times = lambda delivery_id, _body: 3 if delivery_id == "o-1" else 0
    receiver.always_fail = lambda delivery_id, _body: delivery_id == "o-2"
    before = webhook_metrics()
    async with running_sender(settings, redis):
        await enqueue(
            redis, settings, [offline_event(1), offline_event(2), offline_event(3)]
        )
        await wait_until(lambda: redis.xlen(keys.webhook_dead), 10, "o-2 dead")
        await wait_until(lambda: drained(redis, settings), 5, "queue drained")
    assert receiver.delivered_ids() == {"o-1", "o-3"}
    assert [h.attempt for h in receiver.hits if h.delivery_id == "o-1"] == [1, 2, 3, 4]
    assert [h.attempt for h in receiver.hits if h.delivery_id == "o-2"] == [
        1,
        2,
        3,
        4,
        5,
    ]
    ((_, fields),) = await redis.xrange(keys.webhook_dead)
    assert fields[b"id"] == b"o-2"
    assert fields[b"err"] == b"HTTP 500"
    assert json.loads(fields[b"d"])["message_id"] == 2
    after = webhook_metrics()
    assert after["success"] - before["success"] == 2
    assert after["failure"] - before["failure"] == 3 + 5
    assert after["dead"] - before["dead"] == 1


def webhook_metrics() -> dict[str, float]:
    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    return {
        "success": value("jindou_webhook_deliveries_total", outcome="success"),
        "failure": value("jindou_webhook_deliveries_total", outcome="failure"),
        "dead": value("jindou_webhook_dead_letters_total"),
    }


async def test_reenqueued_event_ids_are_sent_once(settings, redis, receiver):
    """A producer redelivering its input enqueues the same event ids again."""
    settings = fast_settings(settings, f"{receiver.url}/hook")
    async with running_sender(settings, redis):
        await enqueue(redis, settings, [notify_event(1), offline_event(1)])
        await wait_until(lambda: len(receiver.delivered()) == 2, 10, "first copies")
        await enqueue(
            redis, settings, [notify_event(1), offline_event(1), notify_event(2)]
        )
        await wait_until(lambda: len(receiver.delivered()) == 3, 10, "n-2")
        await wait_until(lambda: drained(redis, settings), 5, "outbox drained")
        await anyio.sleep(3 * settings.webhook_batch_interval)
    ids = [eid for h in receiver.delivered() for eid in event_ids_in(h.event, h.body)]
    assert sorted(ids) == ["n-1", "n-2", "o-1"]


async def test_entries_read_by_a_dead_consumer_are_reclaimed(settings, redis, receiver):
    settings = fast_settings(
        settings, f"{receiver.url}/hook", webhook_reclaim_after=0.3
    )
    keys = keys_for(settings)
    await redis.xgroup_create(keys.webhook_outbox, GROUP, id="0", mkstream=True)
    await enqueue(redis, settings, [offline_event(i) for i in range(5)])
    # A worker that read these and died before queueing them.
    await redis.xreadgroup(GROUP, "crashed", {keys.webhook_outbox: ">"}, count=10)
    async with running_sender(settings, redis):
        await wait_until(lambda: len(receiver.delivered_ids()) == 5, 10, "reclaimed")
        await wait_until(lambda: drained(redis, settings), 5, "outbox drained")
    assert receiver.delivered_ids() == {f"o-{i}" for i in range(5)}
    pending = await redis.xpending(keys.webhook_outbox, GROUP)
    assert pending["pending"] == 0


async def test_malformed_outbox_entries_are_dropped(settings, redis, receiver):
    settings = fast_settings(settings, f"{receiver.url}/hook")
    keys = keys_for(settings)
    await redis.xadd(keys.webhook_outbox, {"e": "msg.offline", "d": "{}"})  # no id
    await enqueue(redis, settings, [offline_event(1)])
    async with running_sender(settings, redis):
        await wait_until(lambda: receiver.delivered_ids() == {"o-1"}, 10, "o-1")
        await wait_until(lambda: drained(redis, settings), 5, "outbox drained")
    assert len(receiver.hits) == 1


async def test_status_counts_and_replay_resends_dead_letters(settings, redis, receiver):
    settings = fast_settings(settings, f"{receiver.url}/hook", webhook_max_attempts=2)
    keys = keys_for(settings)
    failing = {"o-1", "o-2", "o-3"}
    receiver.always_fail = lambda delivery_id, _body: delivery_id in failing
    async with running_sender(settings, redis):
        await enqueue(redis, settings, [offline_event(i) for i in range(1, 5)])
        await wait_until(
            lambda: _equals(redis.xlen(keys.webhook_dead), 3), 10, "three dead letters"
        )
        env = process_env(settings)
        status = await anyio.run_process(
            [sys.executable, "-m", "broker", "status"], cwd=REPO_ROOT, env=env
        )
        assert "dead letters 3" in status.stdout.decode()
        failing.clear()
        replay = await anyio.run_process(
            [sys.executable, "-m", "broker", "webhooks", "replay", "--limit", "2"],
            cwd=REPO_ROOT,
            env=env,
        )
        assert "re-queued 2 " in replay.stdout.decode()
        await wait_until(lambda: len(receiver.delivered_ids()) == 3, 10, "two replayed")
        assert await redis.xlen(keys.webhook_dead) == 1
        replay = await anyio.run_process(
            [sys.executable, "-m", "broker", "webhooks", "replay"],
            cwd=REPO_ROOT,
            env=env,
            stderr=subprocess.STDOUT,
        )
        assert "re-queued 1 " in replay.stdout.decode()
        await wait_until(lambda: len(receiver.delivered_ids()) == 4, 10, "all replayed")
    assert receiver.delivered_ids() == {"o-1", "o-2", "o-3", "o-4"}
    assert await redis.xlen(keys.webhook_dead) == 0
    # Replayed deliveries keep their ids and bodies, and start counting attempts anew.
    for delivery_id in ("o-1", "o-2", "o-3"):
        hits = [h for h in receiver.hits if h.delivery_id == delivery_id]
        assert [h.attempt for h in hits] == [1, 2, 1]
        assert len({h.body for h in hits}) == 1
    assert all(h.signature_ok for h in receiver.hits)


async def _equals(awaitable, expected) -> bool:
    return await awaitable == expected


async def test_job_leased_by_a_dead_sender_is_sent_after_the_lease(
    settings, redis, receiver
):
    settings = fast_settings(settings, f"{receiver.url}/hook")
    store = WebhookStore(redis, keys_for(settings))
    await store.ensure_group()
    await enqueue(redis, settings, [offline_event(1)])
    # A sender that queued and claimed the job, then died before POSTing it.
    entries, _ = parse_entries(await store.read("dead", count=10, block_ms=10))
    jobs = plan_jobs(entries, batch_size=100, compress_over=0)
    assert (
        await store.queue(
            [e.entry_id for e in entries], jobs, now_ms=now_ms(), seen_ttl_ms=0
        )
        is None
    )
    claim = await store.claim(now_ms=now_ms(), limit=10, lease_ms=1000)
    assert [(c.delivery_id, c.attempt) for c in claim.jobs] == [("o-1", 1)]
    started = time.monotonic()
    async with running_sender(settings, redis):
        await wait_until(lambda: receiver.delivered_ids() == {"o-1"}, 5, "o-1")
        await wait_until(lambda: drained(redis, settings), 5, "job settled")
    assert time.monotonic() - started >= 0.8
    assert [h.attempt for h in receiver.hits] == [2]


async def test_an_outage_longer_than_the_retry_schedule_loses_nothing(
    settings, redis, receiver
):
    """A receiver that fails everything is probed, not hammered: the backlog keeps
    its attempts for when the receiver is back, and none is dead-lettered."""
    settings = fast_settings(settings, f"{receiver.url}/hook", webhook_max_attempts=4)
    keys = keys_for(settings)
    schedule = 0.02 * (1 + 2 + 4)  # the whole retry schedule of one job
    receiver.outage = True
    async with running_sender(settings, redis):
        await enqueue(redis, settings, [offline_event(i) for i in range(300)])
        await anyio.sleep(10 * schedule)
        requests_during_outage = len(receiver.hits)
        receiver.outage = False
        await wait_until(lambda: len(receiver.delivered_ids()) == 300, 20, "backlog")
        await wait_until(lambda: drained(redis, settings), 5, "queue drained")
    assert await redis.xlen(keys.webhook_dead) == 0
    # 20 failures in a row, then about one probe per 20 ms for 0.7 s, not 300 x 4.
    assert requests_during_outage < 100
    assert all(h.signature_ok for h in receiver.hits)


async def test_sender_off_when_disabled_or_without_url(settings, redis, receiver):
    await enqueue(redis, settings, [offline_event(1)])
    keys = keys_for(settings)
    for off in (
        fast_settings(settings, f"{receiver.url}/hook", webhook_sender=False),
        fast_settings(settings, ""),
    ):
        with anyio.fail_after(2):
            await run_webhook_sender(off, redis)  # returns at once
    assert await redis.xlen(keys.webhook_outbox) == 1
    assert receiver.hits == []
