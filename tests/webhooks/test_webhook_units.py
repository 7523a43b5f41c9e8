"""Pure parts of the webhook sender: signing, back-off, batching, compression."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.settings import ConfigError, load_settings
from workers.webhook_batches import (
    OutboxEntry,
    batch_id,
    compress_to_uids,
    decode_job,
    encode_job,
    plan_jobs,
    uncompress_to_uids,
)
from workers.webhook_buffer import OutboxBuffer
from workers.webhook_policy import (
    ReceiverHealth,
    allowed_events,
    retry_delay,
    retry_schedule_span,
)
from workers.webhook_signature import signature, signed_headers, verify

SECRET = "s3cret-for-tests"


# -- signing -----------------------------------------------------------------------
def test_signature_is_hmac_sha256_over_id_timestamp_body():
    import hashlib
    import hmac

    expected = hmac.new(SECRET.encode(), b"o-1.1700000000.{}", hashlib.sha256)
    assert signature(SECRET, "o-1", 1700000000, b"{}") == "v1=" + expected.hexdigest()


def test_verifier_accepts_fresh_and_rejects_replayed_tampered_or_foreign():
    body = b'{"a":1}'
    headers = signed_headers(SECRET, "o-7", body, now=1_000_000)
    assert verify(SECRET, headers, body, now=1_000_000)
    assert verify(SECRET, headers, body, now=1_000_000 + 299)
    # A delivery replayed more than 5 minutes later, or dated in the future.
    assert not verify(SECRET, headers, body, now=1_000_000 + 301)
    assert not verify(SECRET, headers, body, now=1_000_000 - 301)
    assert not verify(SECRET, headers, b'{"a":2}', now=1_000_000)
    assert not verify("other-secret", headers, body, now=1_000_000)
    assert not verify(SECRET, {**headers, "webhook-id": "o-8"}, body, now=1_000_000)
    assert not verify(SECRET, {**headers, "webhook-timestamp": "x"}, body)
    assert not verify("", headers, body, now=1_000_000)


def test_verifier_accepts_any_of_several_signatures_during_rotation():
    body = b"[]"
    headers = signed_headers(SECRET, "msg.notify:1-0", body, now=50)
    both = (
        f"{signature('old', 'msg.notify:1-0', 50, body)} {headers['webhook-signature']}"
    )
    assert verify(SECRET, {**headers, "webhook-signature": both}, body, now=50)


def test_unsigned_without_secret():
    headers = signed_headers("", "o-1", b"{}", now=10)
    assert headers == {"webhook-id": "o-1", "webhook-timestamp": "10"}


@given(st.text(min_size=1, max_size=30), st.binary(max_size=200))
def test_sign_verify_roundtrip(delivery_id, body):
    headers = signed_headers(SECRET, delivery_id, body, now=123)
    assert verify(SECRET, headers, body, now=123)


# -- retry policy -------------------------------------------------------------------
def test_default_schedule_is_8_attempts_over_about_10_minutes():
    settings = load_settings({})
    assert settings.webhook_max_attempts == 8
    span = retry_schedule_span(
        settings.webhook_max_attempts, settings.webhook_backoff_base
    )
    assert 540 <= span <= 660
    assert span == pytest.approx(635)


def test_retry_delay_doubles_with_bounded_jitter():
    for attempt in range(1, 8):
        nominal = 5.0 * 2 ** (attempt - 1)
        low = retry_delay(attempt, 5.0, uniform=lambda a, b: a)
        high = retry_delay(attempt, 5.0, uniform=lambda a, b: b)
        assert low == pytest.approx(nominal * 0.8)
        assert high == pytest.approx(nominal * 1.2)
        assert low <= retry_delay(attempt, 5.0) <= high


def test_event_filter_setting():
    assert allowed_events("") == {"msg.notify", "msg.offline", "user.onlinestatus"}
    assert allowed_events(" msg.offline , user.onlinestatus") == {
        "msg.offline",
        "user.onlinestatus",
    }
    with pytest.raises(ConfigError, match="JINDOU_WEBHOOK_EVENTS"):
        load_settings({"JINDOU_WEBHOOK_EVENTS": "msg.notify,msg.typo"})
    with pytest.raises(ConfigError, match="JINDOU_WEBHOOK_URL"):
        load_settings({"JINDOU_WEBHOOK_URL": "ftp://example.com/hook"})
    with pytest.raises(ConfigError, match="JINDOU_WEBHOOK_MAX_ATTEMPTS"):
        load_settings({"JINDOU_WEBHOOK_MAX_ATTEMPTS": "0"})
    with pytest.raises(ConfigError, match="JINDOU_WEBHOOK_BACKOFF_BASE"):
        load_settings({"JINDOU_WEBHOOK_BACKOFF_BASE": "-1"})


# -- batching -----------------------------------------------------------------------
def entry(n: int, event: str, body: bytes, event_id: str | None = None) -> OutboxEntry:
    return OutboxEntry(f"{n}-0", event_id or f"e{n}", event, body)


def test_notify_batches_hold_at_most_batch_size_messages_with_stable_ids():
    entries = [
        entry(i, "msg.notify", json.dumps({"message_id": i}).encode())
        for i in range(250)
    ]
    jobs = plan_jobs(entries, batch_size=100, compress_over=0)
    assert [len(json.loads(j.job.body)) for j in jobs] == [100, 100, 50]
    assert [j.delivery_id for j in jobs] == [
        batch_id("msg.notify", "0-0"),
        batch_id("msg.notify", "100-0"),
        batch_id("msg.notify", "200-0"),
    ]
    # The same entries always give the same ids and bodies.
    assert plan_jobs(entries, batch_size=100, compress_over=0) == jobs
    messages = [m for j in jobs for m in json.loads(j.job.body)]
    assert [m["message_id"] for m in messages] == list(range(250))


def test_offline_is_one_job_per_event_under_the_event_id_and_duplicates_collapse():
    entries = [
        entry(1, "msg.offline", b'{"message_id":1,"to_uids":["a"]}', "o-1"),
        entry(2, "msg.offline", b'{"message_id":1,"to_uids":["a"]}', "o-1"),
        entry(3, "msg.offline", b'{"message_id":2,"to_uids":["b"]}', "o-2"),
    ]
    jobs = plan_jobs(entries, batch_size=100, compress_over=0)
    assert [j.delivery_id for j in jobs] == ["o-1", "o-2"]
    assert jobs[0].job.body == b'{"message_id":1,"to_uids":["a"]}'
    assert decode_job(encode_job(jobs[0].job)) == jobs[0].job


def test_status_lines_spliced_from_single_strings_and_arrays():
    entries = [
        entry(1, "user.onlinestatus", b'"a-1-1-c1-1-1"'),
        entry(2, "user.onlinestatus", b'["b-1-0-c2-0-0", "c-2-1-c3-1-2"]'),
    ]
    (job,) = plan_jobs(entries, batch_size=100, compress_over=0)
    assert json.loads(job.job.body) == ["a-1-1-c1-1-1", "b-1-0-c2-0-0", "c-2-1-c3-1-2"]
    assert job.event_ids == ("e1", "e2")


def test_long_to_uids_are_gzip_base64_compressed():
    uids = [f"user-{i}" for i in range(1500)]
    body = json.dumps({"message_id": 9, "to_uids": uids}).encode()
    packed = json.loads(compress_to_uids(body, 1000))
    assert packed["to_uids"] == []
    assert packed["compress"] == "gzip"
    assert uncompress_to_uids(packed["compress_to_uids"]) == uids
    assert packed["message_id"] == 9
    # At or under the limit, or with compression off, the body is untouched.
    assert compress_to_uids(body, 1500) == body
    assert compress_to_uids(body, 0) == body


def test_buffer_flushes_full_batches_at_once_and_the_rest_after_the_interval():
    buffer = OutboxBuffer(batch_size=100, interval=0.5)
    for i in range(150):
        buffer.add(entry(i, "msg.notify", b"{}"), now=10.0)
    buffer.add(entry(900, "msg.offline", b"{}"), now=10.0)
    buffer.drop("901-0")
    first = buffer.take_ready(10.1)
    assert len(first.entries) == 101
    assert first.drop_ids == ["901-0"]
    assert buffer.next_deadline() == pytest.approx(10.5)
    assert not buffer.take_ready(10.4)
    assert len(buffer.take_ready(10.5).entries) == 50
    assert buffer.next_deadline() is None
    assert len(buffer) == 0


def test_receiver_health_probes_one_at_a_time_after_failures_in_a_row():
    health = ReceiverHealth(threshold=3, probe_interval=5.0)
    for t in (1.0, 2.0):
        health.record(False, t)
    assert health.claim_limit(16, in_flight=0, now=2.0) == 16
    health.record(True, 2.5)  # a success resets the count
    for t in (3.0, 4.0, 5.0):
        health.record(False, t)
    assert health.down
    assert health.claim_limit(16, in_flight=0, now=9.9) == 0
    assert health.pause(9.0) == pytest.approx(1.0)
    assert health.claim_limit(16, in_flight=1, now=10.0) == 0  # a probe is out
    assert health.claim_limit(16, in_flight=0, now=10.0) == 1
    health.record(True, 10.5)
    assert not health.down
    assert health.claim_limit(16, in_flight=0, now=10.5) == 16
