"""Client sends (HTTP with a user's uid + token): who may send, with which refusal."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ResponseError

from broker.channels import person_channel_id
from broker.redis_conn import keys_for
from broker.send_permissions import SenderFacts, SendPermissions
from tests.channels.helpers import b64, send_as_manager


@pytest.fixture
async def group(api):
    status, _ = await api.post(
        "/channel",
        {"channel_id": "g1", "channel_type": 2, "subscribers": ["alice", "bob"]},
    )
    assert status == 200


@pytest.fixture
async def users(login):
    return {uid: await login(uid) for uid in ("alice", "bob", "carol")}


async def stored(redis, keys, channel_type=2, channel_id="g1") -> tuple[int, int]:
    ch = keys.channel(channel_type, channel_id)
    return await redis.xlen(ch.log), await redis.xlen(keys.dispatch(ch.shard))


async def assert_refused(redis, keys, reply, reason, channel_type=2, channel_id="g1"):
    before = await stored(redis, keys, channel_type, channel_id)
    status, body = await reply
    assert status == 403, body
    assert body["status"] == 403
    assert body["reason_code"] == reason
    assert body["msg"]
    assert await stored(redis, keys, channel_type, channel_id) == before


async def test_member_sends_and_is_the_stored_sender(api, group, users):
    status, body = await users["alice"].send("g1", 2)
    assert status == 200, body
    assert body["data"]["message_seq"] == 1
    assert body["data"]["persisted"] is True
    status, sync = await api.post(
        "/channel/messagesync",
        {"login_uid": "bob", "channel_id": "g1", "channel_type": 2, "limit": 5},
    )
    assert [m["from_uid"] for m in sync["messages"]] == ["alice"]


async def test_non_member_is_refused_with_3(redis, keys, group, users):
    await users["alice"].send("g1", 2)
    await assert_refused(redis, keys, users["carol"].send("g1", 2), 3)
    assert (await stored(redis, keys))[0] == 1


async def test_blacklisted_member_is_refused_with_4(api, redis, keys, group, users):
    await api.post(
        "/channel/blacklist_add",
        {"channel_id": "g1", "channel_type": 2, "uids": ["alice"]},
    )
    await assert_refused(redis, keys, users["alice"].send("g1", 2), 4)
    await api.post(
        "/channel/blacklist_remove",
        {"channel_id": "g1", "channel_type": 2, "uids": ["alice"]},
    )
    assert (await users["alice"].send("g1", 2))[0] == 200


async def test_whitelist_applies_when_set(api, redis, keys, group, users):
    await api.post(
        "/channel/whitelist_set",
        {"channel_id": "g1", "channel_type": 2, "uids": ["bob"]},
    )
    await assert_refused(redis, keys, users["alice"].send("g1", 2), 13)
    assert (await users["bob"].send("g1", 2))[0] == 200
    # a whitelist does not make a non-member a sender
    await api.post(
        "/channel/whitelist_add",
        {"channel_id": "g1", "channel_type": 2, "uids": ["carol"]},
    )
    await assert_refused(redis, keys, users["carol"].send("g1", 2), 3)
    await api.post(
        "/channel/whitelist_remove_all", {"channel_id": "g1", "channel_type": 2}
    )
    assert (await users["alice"].send("g1", 2))[0] == 200


async def test_send_ban_refuses_clients_with_25_not_the_manager(
    api, redis, keys, group, users
):
    await api.post(
        "/channel/info", {"channel_id": "g1", "channel_type": 2, "send_ban": 1}
    )
    await assert_refused(redis, keys, users["alice"].send("g1", 2), 25)
    assert await send_as_manager(api, "g1", 2) == 1


@pytest.mark.parametrize(("flag", "reason"), [("ban", 19), ("disband", 24)])
async def test_ban_and_disband_refuse_everyone(
    api, redis, keys, group, users, flag, reason
):
    await api.post("/channel/info", {"channel_id": "g1", "channel_type": 2, flag: 1})
    await assert_refused(redis, keys, users["alice"].send("g1", 2), reason)
    manager_send = api.post(
        "/message/send",
        {
            "from_uid": "alice",
            "channel_id": "g1",
            "channel_type": 2,
            "payload": b64("x"),
        },
    )
    await assert_refused(redis, keys, manager_send, reason)
    # transient messages too, from either side
    await assert_refused(
        redis, keys, users["alice"].send("g1", 2, header={"no_persist": 1}), reason
    )
    manager_live = api.post(
        "/message/send",
        {
            "channel_id": "g1",
            "channel_type": 2,
            "payload": b64("x"),
            "header": {"no_persist": 1},
        },
    )
    await assert_refused(redis, keys, manager_live, reason)


async def test_manager_sends_skip_membership(api, redis, keys, group):
    status, body = await api.post(
        "/message/send",
        {
            "from_uid": "carol",
            "channel_id": "g1",
            "channel_type": 2,
            "payload": b64("x"),
        },
    )
    assert status == 200
    assert body["data"]["message_seq"] == 1
    # nor the lists: the business server may post for anyone
    body = {"channel_id": "g1", "channel_type": 2}
    await api.post("/channel/blacklist_add", {**body, "uids": ["carol"]})
    await api.post("/channel/whitelist_set", {**body, "uids": ["bob"]})
    await api.post("/channel/info", {**body, "send_ban": 1})
    status, body = await api.post(
        "/message/send",
        {
            "from_uid": "carol",
            "channel_id": "g1",
            "channel_type": 2,
            "payload": b64("y"),
        },
    )
    assert status == 200
    assert body["data"]["message_seq"] == 2


async def test_system_uids_bypass_sender_checks(api, redis, keys, group, users):
    await api.post("/user/systemuids_add", {"uids": ["carol"]})
    assert (await users["carol"].send("g1", 2))[0] == 200
    await api.post(
        "/channel/blacklist_add",
        {"channel_id": "g1", "channel_type": 2, "uids": ["carol"]},
    )
    assert (await users["carol"].send("g1", 2))[0] == 200
    await api.post("/user/systemuids_remove", {"uids": ["carol"]})
    await assert_refused(redis, keys, users["carol"].send("g1", 2), 4)


async def test_transient_client_sends_are_checked(api, redis, keys, group, users):
    status, body = await users["carol"].send("g1", 2, header={"no_persist": 1})
    assert (status, body["reason_code"]) == (403, 3)
    status, body = await users["alice"].send("g1", 2, header={"no_persist": 1})
    assert status == 200
    assert body["data"]["persisted"] is False
    status, body = await users["alice"].send(
        "g1", 2, header={"sync_once": 1, "no_persist": 1}
    )
    assert status == 200
    assert body["data"]["message_seq"] == 0


async def test_clients_cannot_send_to_an_explicit_uid_list(users):
    status, body = await users["alice"].post(
        "/message/send",
        {"subscribers": ["bob"], "payload": b64("x"), "header": {"sync_once": 1}},
    )
    assert status == 403
    assert body["reason_code"] == 11


async def test_recipient_blacklist_applies_to_person_sends(api, redis, keys, users):
    await api.post(
        "/channel/blacklist_add",
        {"channel_id": "bob", "channel_type": 1, "uids": ["carol"]},
    )
    with_bob = person_channel_id("carol", "bob")
    await assert_refused(redis, keys, users["carol"].send("bob", 1), 4, 1, with_bob)
    # the list is bob's: carol may still write to alice, and bob to carol
    assert (await users["carol"].send("alice", 1))[0] == 200
    assert (await users["bob"].send("carol", 1))[0] == 200
    # a system uid as recipient ignores his blacklist (v2)
    await api.post("/user/systemuids_add", {"uids": ["bob"]})
    assert (await users["carol"].send("bob", 1))[0] == 200


@pytest.mark.parametrize(("flag", "reason"), [("ban", 19), ("send_ban", 25)])
async def test_a_banned_user_cannot_send(api, redis, keys, group, users, flag, reason):
    await api.post("/channel", {"channel_id": "alice", "channel_type": 1, flag: 1})
    await assert_refused(redis, keys, users["alice"].send("g1", 2), reason)
    with_bob = person_channel_id("alice", "bob")
    await assert_refused(
        redis, keys, users["alice"].send("bob", 1), reason, 1, with_bob
    )


async def test_spoofed_from_uid_is_refused_and_never_stored(
    api, redis, keys, group, users
):
    for claimed in ("bob", "carol", "____system"):
        await assert_refused_spoof(redis, keys, users["alice"], claimed)
    # naming oneself is fine
    status, _ = await users["alice"].send("g1", 2, from_uid="alice")
    assert status == 200
    status, sync = await api.post(
        "/channel/messagesync",
        {"login_uid": "alice", "channel_id": "g1", "channel_type": 2, "limit": 100},
    )
    assert {m["from_uid"] for m in sync["messages"]} == {"alice"}


async def assert_refused_spoof(redis, keys, user, claimed):
    before = await stored(redis, keys)
    status, body = await user.send("g1", 2, from_uid=claimed)
    assert status == 403, body
    assert await stored(redis, keys) == before


async def test_spoofing_200_times_stores_nothing_foreign(
    api, redis, keys, group, users
):
    """S4 over the client HTTP path: 200 sends claiming other senders, in the group
    and in 1:1 channels: none stored under a foreign from_uid."""
    alice = users["alice"]
    for i in range(200):
        target = ("g1", 2) if i % 2 else ("bob", 1)
        status, _ = await alice.send(*target, text=f"m{i}", from_uid=f"victim{i % 7}")
        assert status == 403
    for channel_type, stored_id in ((2, "g1"), (1, person_channel_id("alice", "bob"))):
        entries = await redis.xrange(keys.channel(channel_type, stored_id).log)
        assert entries == []


async def test_removal_racing_with_sends(api, redis, keys, group, users):
    """Sends racing a removal: every 200 is stored, every 403 is not, and after the
    removal returns no send gets through (the check is atomic with the append)."""
    bob = users["bob"]

    async def remove_soon():
        await asyncio.sleep(0.02)
        status, _ = await api.post(
            "/channel/subscriber_remove",
            {"channel_id": "g1", "channel_type": 2, "subscribers": ["bob"]},
        )
        assert status == 200

    results = await asyncio.gather(
        *(bob.send("g1", 2, text=f"m{i}") for i in range(150)), remove_soon()
    )
    statuses = [status for status, _ in results[:-1]]
    assert set(statuses) <= {200, 403}
    acked = sorted(
        body["data"]["message_seq"] for status, body in results[:-1] if status == 200
    )
    entries = await redis.xrange(keys.channel(2, "g1").log)
    assert len(entries) == len(acked)
    assert acked == list(range(1, len(acked) + 1))
    after = [await bob.send("g1", 2, text="late") for _ in range(20)]
    assert {(s, b["reason_code"]) for s, b in after} == {(403, 3)}
    assert await redis.xlen(keys.channel(2, "g1").log) == len(acked)


async def test_a_failed_check_fails_its_own_send_only(redis, settings):
    # Checks of concurrent sends share one batch: an error reply for one sender's
    # facts (here a person record of the wrong type) must fail that send alone.
    keys = keys_for(settings)
    await redis.set(keys.channel(1, "broken").meta, "not a hash")
    permissions = SendPermissions(redis, keys)
    broken, fine = await asyncio.gather(
        permissions.facts("broken", 2, "g1"),
        permissions.facts("fine", 2, "g1"),
        return_exceptions=True,
    )
    assert isinstance(broken, ResponseError)
    assert fine == SenderFacts(
        sender_is_system=False, sender_banned=False, sender_send_banned=False
    )
