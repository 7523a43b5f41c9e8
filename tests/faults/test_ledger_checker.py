"""The checker itself: each counter must catch the violation it names."""

from __future__ import annotations

from broker.channels import person_channel_id
from broker.keys import Keys
from broker.protocol import StoredMessage
from tests.faults.ledger import (
    OK,
    UNKNOWN,
    ChannelState,
    Entry,
    Ledger,
    Report,
    channel_members,
    check_client_views,
    check_log,
    check_projections,
    check_webhooks,
    conv_field,
    popcount_range,
    snapshot,
)

G = (2, "g1")


def msg(seq: int, from_uid: str, cmn: str, *, red_dot: int = 1) -> Entry:
    return Entry(
        seq,
        StoredMessage(
            message_id=1000 + seq,
            client_msg_no=cmn,
            from_uid=from_uid,
            channel_id=G[1],
            channel_type=G[0],
            timestamp_ms=0,
            payload=b"x",
            red_dot=red_dot,
        ),
    )


def acked(ledger: Ledger, from_uid: str, cmn: str, seq: int) -> None:
    op = ledger.invoke(G[0], G[1], from_uid, cmn)
    ledger.complete(op, OK, seq=seq, message_id=1000 + seq)


def base() -> tuple[Ledger, dict]:
    ledger = Ledger()
    acked(ledger, "a", "1", 1)
    acked(ledger, "b", "2", 2)
    states = {G: ChannelState("e1", 2, [msg(1, "a", "1"), msg(2, "b", "2")])}
    return ledger, states


def test_clean_run_has_no_violation():
    ledger, states = base()
    report = check_log(ledger, states)
    assert report.clean, report.summary()
    assert (report.acked, report.stored) == (2, 2)


def test_lost_acknowledged_message():
    ledger, states = base()
    acked(ledger, "a", "3", 3)
    report = check_log(ledger, states)
    assert report.lost == 1
    assert report.gap == 0


def test_duplicate_unexpected_and_gap():
    ledger, states = base()
    states[G] = ChannelState(
        "e1",
        5,
        [msg(1, "a", "1"), msg(2, "b", "2"), msg(3, "a", "1"), msg(5, "z", "9")],
    )
    report = check_log(ledger, states)
    assert report.duplicated == 1
    assert report.unexpected == 1
    assert report.gap == 1  # seq 4


def test_seq_reuse_across_runs():
    ledger, states = base()
    before = snapshot(states)
    replaced = msg(2, "b", "2")
    other = Entry(2, StoredMessage(**{**_fields(replaced.message), "message_id": 7}))
    states[G] = ChannelState("e1", 2, [msg(1, "a", "1"), other])
    report = check_log(ledger, states, before=before)
    assert report.seq_reuse == 1
    # A new epoch may reuse seqs: that is a reset, not a reuse.
    states[G] = ChannelState("e2", 2, [msg(1, "a", "1"), other])
    assert check_log(ledger, states, before=before).seq_reuse == 0


def test_retry_answered_another_seq():
    ledger, states = base()
    op = ledger.invoke(G[0], G[1], "a", "1")
    ledger.complete(op, OK, seq=2, message_id=1002)
    assert check_log(ledger, states).retry_mismatch == 1


def test_unknown_outcomes_are_counted_not_failed():
    ledger, states = base()
    for cmn in ("7", "8"):
        op = ledger.invoke(G[0], G[1], "a", cmn)
        ledger.complete(op, UNKNOWN, code=503)
    states[G].entries.append(msg(3, "a", "7"))
    states[G].last_seq = 3
    report = check_log(ledger, states)
    assert report.clean, report.summary()
    assert (report.unknown_stored, report.unknown_not_stored) == (1, 1)


def test_retention_trim_is_not_a_loss_or_gap():
    ledger, states = base()
    states[G] = ChannelState("e1", 2, [msg(2, "b", "2")])
    report = check_log(ledger, states)
    assert report.clean, report.summary()
    assert report.trimmed == 1


def test_webhook_missing_and_duplicate_effects():
    _, states = base()
    report = check_log(Ledger(), states)
    report.unexpected = 0
    check_webhooks(states, {"n-1001": 1, "n-1002": 2}, report)
    assert (report.webhook_missing, report.webhook_dup_effects) == (0, 1)
    check_webhooks(states, {"n-1001": 1}, report)
    assert report.webhook_missing == 1


def test_popcount_matches_redis_bit_order():
    bitmap = bytes([0b01100000, 0b00000001])  # bits 1, 2 and 15
    assert popcount_range(bitmap, 0, 15) == 3
    assert popcount_range(bitmap, 2, 14) == 1
    assert popcount_range(bitmap, 16, 40) == 0


async def test_projection_checks_against_redis_state(redis, settings):
    keys = Keys(settings.key_prefix, settings.shards)
    ledger, states = base()
    ledger.mark_read("c", G, 1)
    badge = keys.channel(*G).badge
    await redis.setbit(badge, 1, 1)
    await redis.setbit(badge, 2, 1)
    field = conv_field(G)
    # a sent 1, unread: 2 (from b); b sent 2, unread 0; c read 1, unread 1.
    for uid, row in {"a": "0,1,0", "b": "0,2,0", "c": "1,0,0"}.items():
        await redis.hset(keys.conversations(uid), field, row)
        await redis.zadd(keys.recent(uid), {field: 1})
    members = {G: ["a", "b", "c"]}
    report = await check_projections(
        redis, keys, ledger, states, members, check_log(ledger, states)
    )
    assert report.clean, report.summary()

    # A lost read marker and a stale own_last_seq are both caught; the stale
    # own_last_seq also shows as a wrong unread count.
    await redis.hset(keys.conversations("c"), field, "0,0,0")
    await redis.hset(keys.conversations("b"), field, "0,1,0")
    report = await check_projections(
        redis, keys, ledger, states, members, check_log(ledger, states)
    )
    assert report.conv_mismatch == 2
    assert report.unread_mismatch == 1  # b sees 1 (its own message) instead of 0

    # A missing badge bit: a's unread is 0 instead of 1.
    await redis.hset(keys.conversations("c"), field, "1,0,0")
    await redis.hset(keys.conversations("b"), field, "0,2,0")
    await redis.setbit(badge, 2, 0)
    report = await check_projections(
        redis, keys, ledger, states, members, check_log(ledger, states)
    )
    assert (report.conv_mismatch, report.unread_mismatch) == (0, 2)  # a and c


def test_person_identity_uses_the_storage_id():
    ledger = Ledger()
    op = ledger.invoke(1, "bob", "alice", "1")
    assert op.channel == (1, person_channel_id("alice", "bob"))


def _fields(message: StoredMessage) -> dict:
    return {f: getattr(message, f) for f in message.__struct_fields__}


def test_ledger_round_trips_through_jsonl(tmp_path):
    path = tmp_path / "ledger.jsonl"
    ledger = Ledger(path)
    acked(ledger, "a", "1", 1)
    op = ledger.invoke(G[0], G[1], "b", "2")
    ledger.complete(op, UNKNOWN, code=503)
    loaded = Ledger.load(path)
    assert [(o.identity, o.outcome, o.seq, o.code) for o in loaded.ops] == [
        ((2, "g1", "a", "1"), OK, 1, 0),
        ((2, "g1", "b", "2"), UNKNOWN, 0, 503),
    ]


async def test_group_unread_is_checked_for_every_subscriber(redis, settings):
    """Group channels: members come from the subscriber set; each member's unread
    is the red-dot messages of others after its read position. A planted wrong
    count (one member's read marker moved past what the badge says) is caught,
    and so is a member left without a row."""
    keys = Keys(settings.key_prefix, settings.shards)
    ledger = Ledger()
    acked(ledger, "a", "1", 1)
    acked(ledger, "b", "2", 2)
    acked(ledger, "a", "3", 3)
    entries = [msg(1, "a", "1"), msg(2, "b", "2"), msg(3, "a", "3", red_dot=0)]
    states = {G: ChannelState("e1", 3, entries)}
    await redis.sadd(keys.channel(*G).members, "a", "b", "c")
    members = await channel_members(redis, keys, states)
    assert members == {G: ["a", "b", "c"]}
    badge = keys.channel(*G).badge
    await redis.setbit(badge, 1, 1)
    await redis.setbit(badge, 2, 1)  # seq 3 has red_dot 0: no bit
    field = conv_field(G)
    # a: own 3, unread 0; b: own 2, unread 0 (3 is not red-dot); c: unread 2.
    rows = {"a": "0,3,0", "b": "0,2,0", "c": "0,0,0"}
    for uid, row in rows.items():
        await redis.hset(keys.conversations(uid), field, row)
        await redis.zadd(keys.recent(uid), {field: 1})
    report = await check_projections(
        redis, keys, ledger, states, members, check_log(ledger, states)
    )
    assert report.clean, report.summary()
    assert report.rows_checked == 3

    # Planted: c's unread shows 1 where 2 are due (a lost badge bit).
    await redis.setbit(badge, 1, 0)
    report = await check_projections(
        redis, keys, ledger, states, members, check_log(ledger, states)
    )
    assert report.unread_mismatch == 1
    assert report.details == ["c (2, 'g1'): unread 1, model 2"]
    await redis.setbit(badge, 1, 1)

    # Planted: a member with no row although a message concerns it.
    await redis.hdel(keys.conversations("c"), field)
    report = await check_projections(
        redis, keys, ledger, states, members, check_log(ledger, states)
    )
    assert report.conv_mismatch == 1

    # A channel flagged large keeps no per-member rows: it is not checked.
    await redis.hset(keys.channel(*G).meta, "large", "1")
    assert await channel_members(redis, keys, states) == {}


def test_client_lost_counts_what_a_member_never_got():
    _, states = base()
    members = {G: ["a", "b"]}
    report = check_client_views(
        states, {"a": {G: {1, 2}}, "b": {G: {2}}}, members, Report()
    )
    assert report.client_lost == 1
    assert "b never got" in report.details[0]
    # A uid without a client in the run is not counted.
    report = check_client_views(states, {"a": {G: {1, 2}}}, members, Report())
    assert report.clean
