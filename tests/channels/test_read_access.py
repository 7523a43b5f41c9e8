"""User credentials on the read API: only oneself, only channels one is in."""

from __future__ import annotations

import pytest

from broker.channels import person_channel_id
from tests.channels.helpers import send_as_manager


@pytest.fixture
async def setup(api, login):
    await api.post(
        "/channel",
        {"channel_id": "g1", "channel_type": 2, "subscribers": ["alice", "bob"]},
    )
    users = {uid: await login(uid) for uid in ("alice", "bob", "carol")}
    for _ in range(3):
        await send_as_manager(api, "g1", 2)
    status, body = await users["alice"].send("bob", 1)
    assert status == 200, body
    return users


async def reads(user, login_uid, channel_id, channel_type):
    """Every read route once; returns {route: status}."""
    ch = {
        "channel_id": channel_id,
        "channel_type": channel_type,
        "login_uid": login_uid,
    }
    out = {}
    out["messagesync"] = (await user.post("/channel/messagesync", {**ch, "limit": 10}))[
        0
    ]
    out["max_message_seq"] = (await user.get("/channel/max_message_seq", **ch))[0]
    out["last_message"] = (await user.get("/channel/last_message", **ch))[0]
    out["messages"] = (await user.post("/messages", {**ch, "message_seqs": [1]}))[0]
    out["message"] = (await user.post("/message", {**ch, "client_msg_no": "x"}))[0]
    return out


async def test_members_read_their_group(setup):
    result = await reads(setup["alice"], "alice", "g1", 2)
    # /message looks up an unknown client_msg_no: 404, which is past the checks
    assert result == {
        "messagesync": 200,
        "max_message_seq": 200,
        "last_message": 200,
        "messages": 200,
        "message": 404,
    }
    _status, body = await setup["alice"].post(
        "/channel/messagesync",
        {"login_uid": "alice", "channel_id": "g1", "channel_type": 2, "limit": 10},
    )
    assert [m["message_seq"] for m in body["messages"]] == [1, 2, 3]


async def test_non_members_get_403_everywhere(setup):
    result = await reads(setup["carol"], "carol", "g1", 2)
    assert set(result.values()) == {403}


async def test_login_uid_must_be_the_caller(setup):
    result = await reads(setup["carol"], "alice", "g1", 2)
    assert set(result.values()) == {403}
    result = await reads(setup["carol"], "", "g1", 2)
    assert set(result.values()) == {403}


async def test_a_removed_member_can_no_longer_read(api, setup):
    assert (await reads(setup["bob"], "bob", "g1", 2))["messagesync"] == 200
    await api.post(
        "/channel/subscriber_remove",
        {"channel_id": "g1", "channel_type": 2, "subscribers": ["bob"]},
    )
    assert set((await reads(setup["bob"], "bob", "g1", 2)).values()) == {403}


async def test_person_channels_only_for_the_two_parties(setup):
    # by the other party's uid
    assert (await reads(setup["bob"], "bob", "alice", 1))["messagesync"] == 200
    _status, body = await setup["bob"].post(
        "/channel/messagesync",
        {"login_uid": "bob", "channel_id": "alice", "channel_type": 1, "limit": 10},
    )
    assert len(body["messages"]) == 1
    # by the full fake id: a party may, a third user may not
    fake = person_channel_id("alice", "bob")
    assert (await reads(setup["alice"], "alice", fake, 1))["messagesync"] == 200
    assert set((await reads(setup["carol"], "carol", fake, 1)).values()) == {403}


async def test_manager_reads_everything(api, setup):
    result = await reads(api, "nobody", "g1", 2)
    assert result["messagesync"] == 200
    assert result["messages"] == 200


async def test_byclientmsgno_stays_manager_only(setup):
    status, _ = await setup["alice"].get(
        "/message/byclientmsgno", channel_id="g1", channel_type=2, client_msg_no="x"
    )
    assert status == 401
