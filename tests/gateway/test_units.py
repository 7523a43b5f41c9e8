"""Pure parts of the gateway: limits, views, presence records, kicks, frames."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.channels import person_channel_id
from broker.gateway import frames
from broker.gateway.control import Kick, decode_control, kick_matches
from broker.gateway.limits import Outbox, OutboxFull, TokenBucket
from broker.gateway.presence import ConnRecord, parse_conn
from broker.gateway.views import RecvViews, recv_params
from broker.protocol import StoredMessage


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_burst_then_rate():
    clock = Clock()
    bucket = TokenBucket(rate=10, burst=5, clock=clock)
    assert [bucket.take() for _ in range(7)] == [True] * 5 + [False] * 2
    clock.now = 0.25  # 2.5 tokens
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    clock.now = 100
    assert sum(bucket.take() for _ in range(10)) == 5  # never more than the burst


def test_outbox_bounds_frames_and_bytes():
    box = Outbox(max_frames=3, max_bytes=10)
    box.put(b"aaaa")
    box.put(b"bbbb")
    with pytest.raises(OutboxFull):
        box.put(b"ccc")  # 11 bytes
    box.put(b"cc")
    with pytest.raises(OutboxFull):
        box.put(b"d")  # 4 frames
    assert box.pop() == b"aaaa"
    assert (len(box), box.size) == (2, 6)
    big = Outbox(max_frames=3, max_bytes=10)
    big.put(b"x" * 50)  # one frame larger than the byte bound still goes alone
    with pytest.raises(OutboxFull):
        big.put(b"y")


def message(**kw) -> StoredMessage:
    base = {
        "message_id": 42,
        "client_msg_no": "c",
        "from_uid": "alice",
        "channel_id": person_channel_id("alice", "bob"),
        "channel_type": 1,
        "timestamp_ms": 1_700_000_000_123,
        "payload": b'{"a":1}',
        "red_dot": 1,
    }
    base.update(kw)
    return StoredMessage(**base)


def test_person_views():
    m = message()
    theirs = recv_params(3, m, own=False)
    assert theirs.channelId == "alice"
    assert theirs.header.redDot is True
    assert theirs.timestamp == 1_700_000_000
    assert theirs.messageId == "42"
    mine = recv_params(3, m, own=True)
    assert mine.channelId == "bob"
    assert mine.header.redDot is False


def test_views_are_encoded_once_per_view():
    views = RecvViews(1, message())
    a, b = views.frame_for("bob"), views.frame_for("bob")
    assert a is b
    views.frame_for("alice")
    assert views.encoded_views() == 2
    group = RecvViews(
        1, message(channel_id="g", channel_type=2, setting=0x80, topic="t")
    )
    params = recv_params(1, group.message, own=False)
    assert params.channelId == "g"
    assert params.setting == frames.WireSetting(receipt=True)
    assert params.topic == "t"


def test_system_sender_is_shown_empty():
    params = recv_params(
        1, message(from_uid="____system", channel_id="g", channel_type=2), own=False
    )
    assert params.fromUid == ""


@given(
    st.text(min_size=1).filter(lambda s: ":" not in s),
    st.integers(0, 99),
    st.integers(0, 1),
)
def test_conn_record_round_trip(node_id, flag, level):
    record = ConnRecord("c1", node_id, flag, level)
    assert parse_conn("c1", record.encode()) == record


def test_parse_conn_rejects_garbage():
    assert parse_conn("c", "nonsense") is None
    assert parse_conn("c", "host:x:1") is None
    assert parse_conn("c", "host-1:2:1") == ConnRecord("c", "host-1", 2, 1)


def test_kick_matching():
    def hit(kick, conn="c1", uid="u", flag=1, device="d1"):
        return kick_matches(
            kick, conn_id=conn, uid=uid, device_flag=flag, device_id=device
        )

    master = Kick(uid="u", device_flag=1, except_conn="new")
    assert hit(master)
    assert not hit(master, conn="new")
    assert not hit(master, flag=0)
    assert not hit(master, uid="v")
    slave = Kick(uid="u", device_flag=1, device_id="d1", except_conn="new")
    assert hit(slave)
    assert not hit(slave, device="d2")
    quit_all = Kick(uid="u")
    assert hit(quit_all, flag=0)
    assert hit(quit_all, flag=2)
    assert decode_control(msgspec.msgpack.encode(master)) == master


def test_setting_bits_round_trip():
    for bits in (0, 0x80, 0x20 | 0x08, 0x80 | 0x20 | 0x08 | 0x02):
        assert frames.setting_bits(frames.wire_setting(bits)) == bits
    assert frames.setting_bits(None) == 0


def test_error_frame_leaves_out_an_unknown_id():
    assert frames.error(None, 2, "x") == (
        b'{"jsonrpc":"2.0","error":{"code":2,"message":"x"}}'
    )
    assert b'"id":"a"' in frames.error("a", 2, "x")
    assert frames.result("a", None) == b'{"jsonrpc":"2.0","id":"a","result":null}'


def test_ip_limits_cap_open_connections_and_attempts():
    from broker.gateway.ip_limits import IpLimits

    clock = Clock()
    limits = IpLimits(max_conns=2, attempts_rate=1, attempts_burst=3, clock=clock)
    assert limits.admit("a") is None
    assert limits.admit("a") is None
    refused = limits.admit("a")
    assert refused is not None
    assert refused.reason == "ip_connections"
    assert limits.admit("b") is None  # per address
    limits.release("a")
    refused = limits.admit("a")  # a slot is free, but 3 attempts used the burst
    assert refused is not None
    assert refused.reason == "ip_attempts"
    clock.now = 1.0
    assert limits.admit("a") is None
    off = IpLimits(max_conns=0, attempts_rate=0, attempts_burst=0, clock=clock)
    assert all(off.admit("a") is None for _ in range(1000))


def test_text_frame_header_by_length():
    from broker.gateway.wire import text_frame

    assert text_frame(b"hi") == b"\x81\x02hi"
    assert text_frame(b"x" * 200)[:4] == b"\x81\x7e\x00\xc8"
    assert text_frame(b"x" * 70_000)[:10] == b"\x81\x7f" + (70_000).to_bytes(8, "big")
