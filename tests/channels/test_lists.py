"""Black- and whitelists: storage, GET /channel/whitelist, conversation effects."""

from __future__ import annotations

import pytest

from broker.channels import person_channel_id
from tests.channels.helpers import send_as_manager


async def listed(redis, key) -> set[str]:
    return {m.decode() for m in await redis.smembers(key)}


async def record(redis, keys, uid, field):
    value = await redis.hget(keys.conversations(uid), field)
    in_recent = await redis.zscore(keys.recent(uid), field) is not None
    return (value.decode() if value else None), in_recent


@pytest.mark.parametrize("kind", ["blacklist", "whitelist"])
async def test_add_remove_set_remove_all(api, redis, keys, kind):
    ch = keys.channel(2, "g1")
    key = ch.blacklist if kind == "blacklist" else ch.whitelist
    body = {"channel_id": "g1", "channel_type": 2}
    assert await api.post(f"/channel/{kind}_add", {**body, "uids": ["a", "b"]}) == (
        200,
        {"status": 200},
    )
    assert await listed(redis, key) == {"a", "b"}
    assert (await api.post(f"/channel/{kind}_remove", {**body, "uids": ["a"]}))[
        0
    ] == 200
    assert await listed(redis, key) == {"b"}
    assert (await api.post(f"/channel/{kind}_set", {**body, "uids": ["c", "d"]}))[
        0
    ] == 200
    assert await listed(redis, key) == {"c", "d"}
    assert (await api.post(f"/channel/{kind}_set", {**body, "uids": []}))[0] == 200
    assert await listed(redis, key) == set()
    await api.post(f"/channel/{kind}_add", {**body, "uids": ["e"]})
    assert (await api.post(f"/channel/{kind}_remove_all", body))[0] == 200
    assert await redis.exists(key) == 0
    # the member set is never touched by list calls
    assert await redis.exists(ch.members) == 0


@pytest.mark.parametrize("kind", ["blacklist", "whitelist"])
@pytest.mark.parametrize(
    ("op", "body", "fragment"),
    [
        ("add", {"channel_id": "g1", "channel_type": 2, "uids": []}, "empty"),
        ("remove", {"channel_id": "g1", "channel_type": 2, "uids": []}, "empty"),
        ("add", {"channel_id": "g1", "channel_type": 0, "uids": ["a"]}, "channel_type"),
        ("set", {"channel_id": "", "channel_type": 2, "uids": ["a"]}, "channel_id"),
        ("add", {"channel_id": "g1", "channel_type": 2, "uids": ["a@b"]}, "uids"),
    ],
)
async def test_bad_list_calls_are_400(api, redis, keys, kind, op, body, fragment):
    status, reply = await api.post(f"/channel/{kind}_{op}", body)
    assert status == 400, reply
    assert fragment in reply["msg"], reply
    assert [k async for k in redis.scan_iter(match=f"{keys.prefix}{{s*")] == []


async def test_get_whitelist(api):
    body = {"channel_id": "g1", "channel_type": 2}
    assert await api.get("/channel/whitelist", **body) == (200, [])
    await api.post("/channel/whitelist_add", {**body, "uids": ["zed", "amy"]})
    status, rows = await api.get("/channel/whitelist", **body)
    assert status == 200
    assert rows == [
        {"id": 1, "uid": "amy", "created_at": None, "updated_at": None},
        {"id": 2, "uid": "zed", "created_at": None, "updated_at": None},
    ]
    status, reply = await api.get("/channel/whitelist", channel_id="g1", channel_type=0)
    assert status == 400, reply


async def test_blacklist_add_and_set_delete_conversations(api, redis, keys):
    await api.post(
        "/channel",
        {"channel_id": "g1", "channel_type": 2, "subscribers": ["a", "b", "c"]},
    )
    await api.post(
        "/channel/blacklist_add", {"channel_id": "g1", "channel_type": 2, "uids": ["a"]}
    )
    assert await record(redis, keys, "a", "2:g1") == (None, False)
    assert await record(redis, keys, "b", "2:g1") == ("0,0,0", True)
    await api.post(
        "/channel/blacklist_set", {"channel_id": "g1", "channel_type": 2, "uids": ["b"]}
    )
    assert await record(redis, keys, "b", "2:g1") == (None, False)
    assert await record(redis, keys, "c", "2:g1") == ("0,0,0", True)


async def test_blacklist_remove_recreates_conversations_of_members(api, redis, keys):
    await api.post(
        "/channel", {"channel_id": "g1", "channel_type": 2, "subscribers": ["a"]}
    )
    body = {"channel_id": "g1", "channel_type": 2}
    await api.post("/channel/blacklist_add", {**body, "uids": ["a", "stranger"]})
    await send_as_manager(api, "g1", 2)
    await send_as_manager(api, "g1", 2)
    await api.post("/channel/blacklist_remove", {**body, "uids": ["a", "stranger"]})
    assert await record(redis, keys, "a", "2:g1") == ("2,0,0", True)
    # a non-member gets no conversation for a channel he cannot read
    assert await record(redis, keys, "stranger", "2:g1") == (None, False)


async def test_person_lists_belong_to_the_recipient_uid(api, redis, keys):
    await api.post(
        "/channel/blacklist_add",
        {"channel_id": "bob", "channel_type": 1, "uids": ["eve"]},
    )
    assert await listed(redis, keys.channel(1, "bob").blacklist) == {"eve"}


async def test_person_whitelist_add_creates_the_owner_conversations(api, redis, keys):
    await api.post(
        "/message/send",
        {"from_uid": "amy", "channel_id": "bob", "channel_type": 1, "payload": "aGk="},
    )
    status, _ = await api.post(
        "/channel/whitelist_add",
        {"channel_id": "bob", "channel_type": 1, "uids": ["amy", "cid"]},
    )
    assert status == 200
    assert await listed(redis, keys.channel(1, "bob").whitelist) == {"amy", "cid"}
    with_amy = f"1:{person_channel_id('bob', 'amy')}"
    with_cid = f"1:{person_channel_id('bob', 'cid')}"
    assert await record(redis, keys, "bob", with_amy) == ("1,0,0", True)
    assert await record(redis, keys, "bob", with_cid) == ("0,0,0", True)
    # only the owner gets them
    assert await record(redis, keys, "cid", with_cid) == (None, False)
