"""S8: list fields above settings.max_list are 400; bodies above 1 MiB are 413."""

from __future__ import annotations

import io
import json

import pytest

LIST_CALLS = [
    ("/channel", "subscribers", {"channel_id": "g1", "channel_type": 2}),
    ("/channel/subscriber_add", "subscribers", {"channel_id": "g1", "channel_type": 2}),
    (
        "/channel/subscriber_remove",
        "subscribers",
        {"channel_id": "g1", "channel_type": 2},
    ),
    *[
        (f"/channel/{kind}_{op}", "uids", {"channel_id": "g1", "channel_type": 2})
        for kind in ("blacklist", "whitelist")
        for op in ("add", "remove", "set")
    ],
    ("/user/systemuids_add", "uids", {}),
    ("/user/systemuids_remove", "uids", {}),
]


@pytest.mark.parametrize(("path", "field", "base"), LIST_CALLS)
async def test_lists_over_the_limit_are_400(
    api, redis, keys, settings, path, field, base
):
    too_many = [f"u{i}" for i in range(settings.max_list + 1)]
    status, reply = await api.post(path, {**base, field: too_many})
    assert status == 400, reply
    assert str(settings.max_list) in reply["msg"]
    assert [k async for k in redis.scan_iter(match=f"{keys.prefix}{{*")] == []
    assert await redis.exists(keys.system_uids) == 0


async def test_a_list_at_the_limit_is_accepted(api, redis, keys, settings):
    uids = [f"u{i}" for i in range(settings.max_list)]
    status, _ = await api.post(
        "/channel/subscriber_add",
        {"channel_id": "g1", "channel_type": 2, "subscribers": uids},
    )
    assert status == 200
    assert await redis.scard(keys.channel(2, "g1").members) == settings.max_list
    # every new member got his conversation record
    assert await redis.hget(keys.conversations("u9999"), "2:g1") == b"0,0,0"
    # tidy the 20,000 user keys in bulk (the fixture deletes one key at a time)
    batch = []
    async for key in redis.scan_iter(match=f"{keys.prefix}*", count=5000):
        batch.append(key)
    for start in range(0, len(batch), 5000):
        await redis.unlink(*batch[start : start + 5000])


async def test_body_one_byte_over_the_cap_is_413(api, redis, keys, settings):
    base = {"channel_id": "g1", "channel_type": 2, "subscribers": ["a"], "pad": ""}
    size = len(json.dumps(base).encode())
    base["pad"] = "x" * (settings.max_body - size + 1)
    data = json.dumps(base).encode()
    assert len(data) == settings.max_body + 1
    resp = await api.client.post(
        "/channel",
        data=io.BytesIO(data),
        headers={"token": api.token, "Content-Type": "application/json"},
    )
    assert resp.status == 413
    assert (await resp.json())["status"] == 413
    assert await redis.exists(keys.channel(2, "g1").members) == 0
    # exactly at the cap it is accepted
    base["pad"] = "x" * (settings.max_body - size)
    resp = await api.client.post(
        "/channel",
        data=io.BytesIO(json.dumps(base).encode()),
        headers={"token": api.token, "Content-Type": "application/json"},
    )
    assert resp.status == 200
