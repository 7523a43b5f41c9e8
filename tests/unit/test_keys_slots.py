"""Every key one script touches must live in one Redis Cluster slot."""

import random
import string

from broker.keys import Keys


def crc16(data: bytes) -> int:
    """CRC16-XMODEM, the Redis Cluster key hash."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def slot(key: str) -> int:
    raw = key.encode()
    start = raw.find(b"{")
    if start != -1:
        end = raw.find(b"}", start + 1)
        if end > start + 1:
            raw = raw[start + 1 : end]
    return crc16(raw) % 16384


def test_crc16_matches_the_redis_reference_vector():
    assert crc16(b"123456789") == 0x31C3


def append_script_keys(keys: Keys, channel_type: int, channel_id: str):
    ch = keys.channel(channel_type, channel_id)
    return [
        ch.meta,
        ch.log,
        ch.badge,
        ch.index,
        # the index buckets the scripts derive from ch.index (lua/index.lua)
        ch.index_bucket(0, 0),
        ch.index_bucket(14, 9_999),
        ch.members,
        ch.blacklist,
        ch.whitelist,
        keys.dispatch(ch.shard),
        keys.lease(ch.shard),
    ]


def test_all_append_keys_share_one_slot():
    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits + ":-_.é"
    keys = Keys(prefix="jd:", shards=128)
    for _ in range(10_000):
        channel_id = "".join(rng.choices(alphabet, k=rng.randint(1, 40)))
        slots = {
            slot(k) for k in append_script_keys(keys, rng.randint(1, 12), channel_id)
        }
        assert len(slots) == 1


def test_user_keys_share_one_slot():
    keys = Keys()
    for uid in ["alice", "b:o:b", "x" * 128]:
        assert (
            len(
                {
                    slot(keys.conversations(uid)),
                    slot(keys.recent(uid)),
                    slot(keys.connections(uid)),
                    slot(keys.tokens(uid)),
                }
            )
            == 1
        )


def test_prefix_is_configurable():
    keys = Keys(prefix="t1:", shards=4)
    assert keys.channel(2, "g").log.startswith("t1:{s")
