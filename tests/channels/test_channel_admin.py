"""POST /channel, /channel/info, /channel/delete and the subscriber calls."""

from __future__ import annotations

import pytest

from broker.channels import person_channel_id
from tests.channels.helpers import send_as_manager


async def meta(redis, keys, channel_type, channel_id) -> dict[str, str]:
    raw = await redis.hgetall(keys.channel(channel_type, channel_id).meta)
    return {k.decode(): v.decode() for k, v in raw.items()}


async def members(redis, keys, channel_type, channel_id) -> set[str]:
    raw = await redis.smembers(keys.channel(channel_type, channel_id).members)
    return {m.decode() for m in raw}


async def conversation(redis, keys, uid, field):
    """(conv record, recent score) of one user's conversation, or (None, None)."""
    record = await redis.hget(keys.conversations(uid), field)
    score = await redis.zscore(keys.recent(uid), field)
    return (record.decode() if record else None), score


async def test_create_sets_every_flag_and_members(api, redis, keys):
    status, body = await api.post(
        "/channel",
        {
            "channel_id": "g1",
            "channel_type": 2,
            "ban": 0,
            "send_ban": 1,
            "large": 1,
            "allow_stranger": 1,
            "subscribers": ["a", "b"],
        },
    )
    assert (status, body) == (200, {"status": 200})
    m = await meta(redis, keys, 2, "g1")
    assert {
        f: m[f] for f in ("ban", "disband", "send_ban", "large", "allow_stranger")
    } == {
        "ban": "0",
        "disband": "0",
        "send_ban": "1",
        "large": "1",
        "allow_stranger": "1",
    }
    assert m["members_ver"] == "1"
    assert await members(redis, keys, 2, "g1") == {"a", "b"}


async def test_update_overwrites_flags_but_keeps_the_log_position(api, redis, keys):
    await api.post("/channel", {"channel_id": "g1", "channel_type": 2, "large": 1})
    await send_as_manager(api, "g1", 2)
    await send_as_manager(api, "g1", 2)
    before = await meta(redis, keys, 2, "g1")
    # Omitted flags become 0, as in v2; seq, epoch, last_ms and created stay.
    status, _ = await api.post(
        "/channel", {"channel_id": "g1", "channel_type": 2, "disband": 1}
    )
    assert status == 200
    after = await meta(redis, keys, 2, "g1")
    assert after["large"] == "0"
    assert after["disband"] == "1"
    for field in ("seq", "epoch", "last_ms", "created"):
        assert after[field] == before[field]
    assert after["seq"] == "2"


async def test_channel_info_overwrites_flags_only(api, redis, keys):
    await api.post(
        "/channel", {"channel_id": "g1", "channel_type": 2, "subscribers": ["a"]}
    )
    status, body = await api.post(
        "/channel/info", {"channel_id": "g1", "channel_type": 2, "ban": 1, "large": 1}
    )
    assert (status, body) == (200, {"status": 200})
    m = await meta(redis, keys, 2, "g1")
    assert (m["ban"], m["large"], m["send_ban"]) == ("1", "1", "0")
    assert await members(redis, keys, 2, "g1") == {"a"}
    status, _ = await api.post(
        "/channel/info", {"channel_id": "g1", "channel_type": 2, "ban": 0}
    )
    assert (await meta(redis, keys, 2, "g1"))["ban"] == "0"


@pytest.mark.parametrize(
    ("path", "body", "fragment"),
    [
        ("/channel", {"channel_id": "", "channel_type": 2}, "channel_id"),
        ("/channel", {"channel_id": "g", "channel_type": 0}, "channel_type"),
        ("/channel", {"channel_id": "g", "channel_type": 77}, "channel_type"),
        ("/channel", {"channel_id": "a@b", "channel_type": 2}, "channel_id"),
        ("/channel", {"channel_id": "g", "channel_type": 2, "ban": 2}, "ban"),
        (
            "/channel",
            {"channel_id": "u", "channel_type": 1, "subscribers": ["x"]},
            "person",
        ),
        (
            "/channel",
            {"channel_id": "g", "channel_type": 2, "subscribers": [""]},
            "subscribers",
        ),
        ("/channel/info", {"channel_id": "g", "channel_type": 2, "large": -1}, "large"),
        ("/channel/info", {"channel_id": "g#1", "channel_type": 2}, "channel_id"),
        ("/channel/delete", {"channel_id": "u", "channel_type": 1}, "person"),
        ("/channel/subscriber_add", {"channel_id": "g", "subscribers": []}, "empty"),
        (
            "/channel/subscriber_add",
            {"channel_id": "u", "channel_type": 1, "subscribers": ["x"]},
            "person",
        ),
        (
            "/channel/subscriber_add",
            {"channel_id": "g", "subscribers": ["x"], "temp_subscriber": 1},
            "temp",
        ),
        (
            "/channel/subscriber_add",
            {"channel_id": "g", "subscribers": ["x&y"]},
            "subscribers",
        ),
        (
            "/channel/subscriber_remove",
            {"channel_id": "g", "channel_type": 2, "subscribers": []},
            "empty",
        ),
        (
            "/channel/subscriber_remove",
            {"channel_id": "u", "channel_type": 1, "subscribers": ["x"]},
            "person",
        ),
        (
            "/channel/subscriber_remove_all",
            {"channel_id": "u", "channel_type": 1},
            "person",
        ),
        (
            "/channel/subscriber_remove_all",
            {"channel_id": "g", "channel_type": 0},
            "channel_type",
        ),
    ],
)
async def test_bad_requests_are_400_and_change_nothing(
    api, redis, keys, path, body, fragment
):
    status, reply = await api.post(path, body)
    assert status == 400, reply
    assert reply["status"] == 400
    assert fragment in reply["msg"]
    assert [k async for k in redis.scan_iter(match=f"{keys.prefix}{{s*")] == []


async def test_subscriber_add_creates_conversations_at_the_head(api, redis, keys):
    await api.post(
        "/channel", {"channel_id": "g1", "channel_type": 2, "subscribers": ["a"]}
    )
    record_a, score_a = await conversation(redis, keys, "a", "2:g1")
    assert record_a == "0,0,0"
    assert score_a is not None
    for _ in range(3):
        await send_as_manager(api, "g1", 2)
    # channel_type 0 means group, as in v2
    status, body = await api.post(
        "/channel/subscriber_add", {"channel_id": "g1", "subscribers": ["b", "a"]}
    )
    assert (status, body) == (200, {"status": 200})
    record_b, score_b = await conversation(redis, keys, "b", "2:g1")
    assert record_b == "3,0,0"  # a new member starts with 0 unread
    assert score_b is not None
    assert score_b > 0
    # an existing member keeps his cursor
    assert (await conversation(redis, keys, "a", "2:g1"))[0] == "0,0,0"
    assert await members(redis, keys, 2, "g1") == {"a", "b"}
    assert (await meta(redis, keys, 2, "g1"))["members_ver"] == "2"


async def test_members_ver_moves_only_when_membership_changes(api, redis, keys):
    async def ver():
        return int((await meta(redis, keys, 2, "g1")).get("members_ver", 0))

    await api.post(
        "/channel/subscriber_add", {"channel_id": "g1", "subscribers": ["a"]}
    )
    assert await ver() == 1
    await api.post(
        "/channel/subscriber_add", {"channel_id": "g1", "subscribers": ["a"]}
    )
    assert await ver() == 1
    await api.post(
        "/channel/subscriber_remove",
        {"channel_id": "g1", "channel_type": 2, "subscribers": ["nobody"]},
    )
    assert await ver() == 1
    await api.post(
        "/channel/subscriber_remove",
        {"channel_id": "g1", "channel_type": 2, "subscribers": ["a"]},
    )
    assert await ver() == 2
    await api.post(
        "/channel/subscriber_add", {"channel_id": "g1", "subscribers": ["b"]}
    )
    await api.post(
        "/channel/subscriber_remove_all", {"channel_id": "g1", "channel_type": 2}
    )
    assert await ver() == 4


async def test_reset_replaces_members_and_drops_the_old_ones_conversations(
    api, redis, keys
):
    await api.post(
        "/channel", {"channel_id": "g1", "channel_type": 2, "subscribers": ["a", "b"]}
    )
    await send_as_manager(api, "g1", 2)
    status, _ = await api.post(
        "/channel/subscriber_add",
        {"channel_id": "g1", "subscribers": ["b", "c"], "reset": 1},
    )
    assert status == 200
    assert await members(redis, keys, 2, "g1") == {"b", "c"}
    assert await conversation(redis, keys, "a", "2:g1") == (None, None)
    assert (await conversation(redis, keys, "b", "2:g1"))[0] == "0,0,0"  # kept
    assert (await conversation(redis, keys, "c", "2:g1"))[0] == "1,0,0"  # new
    # POST /channel with reset and no subscribers clears the member list
    status, _ = await api.post(
        "/channel", {"channel_id": "g1", "channel_type": 2, "reset": 1}
    )
    assert status == 200
    assert await members(redis, keys, 2, "g1") == set()
    assert await conversation(redis, keys, "b", "2:g1") == (None, None)


async def test_subscriber_remove_deletes_conversations(api, redis, keys):
    await api.post(
        "/channel", {"channel_id": "g1", "channel_type": 2, "subscribers": ["a", "b"]}
    )
    status, body = await api.post(
        "/channel/subscriber_remove",
        {"channel_id": "g1", "channel_type": 2, "subscribers": ["a"]},
    )
    assert (status, body) == (200, {"status": 200})
    assert await members(redis, keys, 2, "g1") == {"b"}
    assert await conversation(redis, keys, "a", "2:g1") == (None, None)
    assert (await conversation(redis, keys, "b", "2:g1"))[0] == "0,0,0"


async def test_subscriber_remove_all(api, redis, keys):
    await api.post(
        "/channel", {"channel_id": "g1", "channel_type": 2, "subscribers": ["a", "b"]}
    )
    status, body = await api.post(
        "/channel/subscriber_remove_all", {"channel_id": "g1", "channel_type": 2}
    )
    assert (status, body) == (200, {"status": 200})
    assert await members(redis, keys, 2, "g1") == set()
    for uid in ("a", "b"):
        assert await conversation(redis, keys, uid, "2:g1") == (None, None)


async def test_delete_removes_every_channel_key_and_conversations(api, redis, keys):
    await api.post(
        "/channel", {"channel_id": "g1", "channel_type": 2, "subscribers": ["a", "b"]}
    )
    await api.post(
        "/channel/blacklist_add", {"channel_id": "g1", "channel_type": 2, "uids": ["x"]}
    )
    await api.post(
        "/channel/whitelist_add", {"channel_id": "g1", "channel_type": 2, "uids": ["a"]}
    )
    status, body = await api.post(
        "/message/send",
        {
            "from_uid": "a",
            "channel_id": "g1",
            "channel_type": 2,
            "payload": "aGk=",
            "header": {"red_dot": 1},
        },
    )
    assert status == 200, body
    ch = keys.channel(2, "g1")
    assert (
        await redis.exists(
            ch.log,
            ch.members,
            ch.blacklist,
            ch.whitelist,
            ch.badge,
            ch.index_bucket(0, 0),
        )
        == 6
    )
    ver_before = int((await meta(redis, keys, 2, "g1"))["members_ver"])
    epoch_before = (await meta(redis, keys, 2, "g1"))["epoch"]
    status, body = await api.post(
        "/channel/delete", {"channel_id": "g1", "channel_type": 2}
    )
    assert (status, body) == (200, {"status": 200})
    assert (
        await redis.exists(
            ch.log,
            ch.members,
            ch.blacklist,
            ch.whitelist,
            ch.badge,
            ch.index_bucket(0, 0),
        )
        == 0
    )
    # only members_ver survives, moved on, so cached member lists are dropped
    assert await meta(redis, keys, 2, "g1") == {"members_ver": str(ver_before + 1)}
    for uid in ("a", "b"):
        assert await conversation(redis, keys, uid, "2:g1") == (None, None)
    # a later send re-creates the channel in a new epoch, from seq 1
    assert await send_as_manager(api, "g1", 2) == 1
    assert (await meta(redis, keys, 2, "g1"))["epoch"] != epoch_before


async def test_delete_of_a_missing_channel_is_a_no_op(api, redis, keys):
    status, body = await api.post(
        "/channel/delete", {"channel_id": "nope", "channel_type": 2}
    )
    assert (status, body) == (200, {"status": 200})
    assert await redis.exists(keys.channel(2, "nope").meta) == 0


async def test_person_channel_flags_belong_to_the_uid(api, redis, keys):
    status, _ = await api.post(
        "/channel", {"channel_id": "alice", "channel_type": 1, "ban": 1}
    )
    assert status == 200
    assert (await meta(redis, keys, 1, "alice"))["ban"] == "1"
    # the 1:1 channel's own meta is untouched
    assert (
        await redis.exists(keys.channel(1, person_channel_id("alice", "bob")).meta) == 0
    )


@pytest.mark.parametrize("channel_type", [7, 8, 9])
async def test_data_temp_and_live_channels_get_no_conversations(
    api, redis, keys, channel_type
):
    status, _ = await api.post(
        "/channel/subscriber_add",
        {"channel_id": "c1", "channel_type": channel_type, "subscribers": ["a"]},
    )
    assert status == 200
    assert await members(redis, keys, channel_type, "c1") == {"a"}
    assert await redis.exists(keys.conversations("a"), keys.recent("a")) == 0
