"""The send path's packed append is the same command as the generic packing."""

from __future__ import annotations

import pytest

from broker import append_pack
from broker.append_pack import AppendPacker
from broker.keys import Keys
from broker.redis_batch import pack
from broker.scripts import append_call

SHA = "0123456789abcdef0123456789abcdef01234567"


def reference(keys: Keys, retention: int, **fields: object) -> bytes:
    channel = keys.channel(fields.pop("channel_type"), fields.pop("channel_id"))  # type: ignore[arg-type]
    names, args = append_call(
        channel=channel,
        dispatch=keys.dispatch(channel.shard),
        retention=retention,
        **fields,  # type: ignore[arg-type]
    )
    return pack("EVALSHA", SHA, len(names), *names, *args)


def fields(i: int, **changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "channel_type": 1 + i % 2,
        "channel_id": f"a{i}@b{i}",
        "message": bytes(range(i % 256)) + b"\r\n$",
        "red_dot": bool(i % 2),
        "dedupe_ttl": 86400 + i % 3,
        "message_id": 1_234_567_890_123 + i,
        "client_msg_no": f"cmn-{i}" if i % 3 else "",
        "from_uid": f"a{i}",
        "digest": f"{i:016x}",
        "new_epoch": f"{i * 7:016x}",
        "now_ms": 1_700_000_000_000 + i,
        "origin_conn": f"conn{i}" if i % 4 == 0 else "",
        "check_uid": f"ü{i}" if i % 5 == 0 else "",
    }
    base.update(changes)
    return base


@pytest.mark.parametrize("retention", [0, 500])
def test_packed_append_matches_generic_pack(retention: int) -> None:
    keys = Keys(prefix="t:", shards=16)
    packer = AppendPacker(SHA, keys, retention)
    for i in range(300):  # channels repeat: cached and fresh heads both checked
        f = fields(i % 40 + i // 100)
        assert packer.pack(**f) == reference(keys, retention, **dict(f))  # type: ignore[arg-type]


def test_channel_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(append_pack, "MAX_CACHED_CHANNELS", 5)
    keys = Keys()
    packer = AppendPacker(SHA, keys, 0)
    for i in range(23):
        f = fields(i)
        assert packer.pack(**f) == reference(keys, 0, **dict(f))  # type: ignore[arg-type]
        assert len(packer._channels) <= 5
