"""Pure parts and the unread script, checked against naive versions."""

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from broker.conversation_rules import (
    min_ms_of_version,
    parse_last_msg_seqs,
    parse_record,
    set_unread_target,
    version_of,
)
from broker.conversation_scripts import ConversationScripts, parse_channel_state
from broker.redis_conn import keys_for
from workers.delivery import group_by_node, user_nodes
from workers.fanout import (
    ChannelWork,
    DispatchRef,
    activity_of,
    fanned_seq,
    plan_conversations,
)


def test_records_and_versions():
    assert parse_record(b"3,5,1").cursor == 5
    assert parse_record(None).encode() == "0,0,0"
    assert version_of(1700) == 1_700_000_000
    assert min_ms_of_version(version_of(1_795_643_667_786)) == 1_795_643_667_786
    assert min_ms_of_version(version_of(1_795_643_667_786) + 1) == 1_795_643_667_787
    assert set_unread_target(10, 0) == 10
    assert set_unread_target(10, 3) == 7
    assert set_unread_target(10, 11) == 9
    assert set_unread_target(0, 5) == 0


def test_last_msg_seqs():
    assert parse_last_msg_seqs("bob:1:5|g:x:2:7|", "alice") == {
        "1:bob@alice": 5,
        "2:g:x": 7,
    }
    for bad in ("bob:1", "bob:x:1", "bob:1:-1", "b@c:1:1x"):
        with pytest.raises(ValueError, match="channelId:type:seq"):
            parse_last_msg_seqs(bad, "alice")


def test_fanned_mark_is_per_epoch():
    assert fanned_seq(b"e1:7", "e1") == 7
    assert fanned_seq(b"e1:7", "e2") == 0
    assert fanned_seq(None, "e1") == 0


def _entry(seq, sender, ms=1000):
    return DispatchRef(
        entry_id=b"1-0", seq=seq, channel_type=2, channel_id="g", from_uid=sender,
        timestamp_ms=ms + seq, origin_conn="",
    )  # fmt: skip


def test_plan_small_and_large():
    entries = [_entry(1, "a"), _entry(2, "b"), _entry(3, "a")]
    small = ChannelWork(2, "g", entries, frozenset({"a", "b", "c"}), False, "e")
    plan = plan_conversations([activity_of(small)])
    assert plan[("a", "2:g")].own_seq == 3
    assert plan[("b", "2:g")].own_seq == 2
    assert plan[("c", "2:g")].own_seq == 0
    assert {u.activity_ms for u in plan.values()} == {1003}
    large = ChannelWork(2, "g", entries, frozenset({"a", "b", "c"}), True, "e")
    plan = plan_conversations([activity_of(large)])
    assert set(plan) == {("a", "2:g"), ("b", "2:g")}  # senders only
    assert all(u.activity_ms == 0 for u in plan.values())


def test_group_by_node():
    nodes = user_nodes(
        {"a": [b"n1:0:1", b"n2:1:0"], "b": [b"n1:0:0"], "c": [b"dead:0:0"]},
        frozenset({"n1", "n2"}),
    )
    assert set(nodes) == {"a", "b"}
    assert group_by_node({"a", "b", "c"}, nodes) == {"n1": ["a", "b"], "n2": ["a"]}


@hsettings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # keys reset below
)
@given(
    bits=st.sets(st.integers(1, 200), max_size=60),
    cursor=st.integers(0, 210),
    last=st.integers(0, 210),
)
async def test_unread_script_counts_like_naive(redis, settings, bits, cursor, last):
    keys = keys_for(settings)
    channel = keys.channel(2, "unread-check")
    await redis.delete(channel.badge, channel.meta)
    for bit in bits:
        await redis.setbit(channel.badge, bit, 1)
    await redis.hset(channel.meta, mapping={"seq": last, "last_ms": 5})
    scripts = ConversationScripts(redis, keys)
    state = parse_channel_state(
        await scripts.channel_state(channel=channel, cursor=cursor)
    )
    assert state.unread == sum(1 for b in bits if cursor < b <= last)
    assert state.last_seq == last
