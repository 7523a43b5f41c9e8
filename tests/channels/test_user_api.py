"""POST /user/token and the system uid calls."""

from __future__ import annotations

import pytest

from broker.users import hash_token


async def test_token_is_stored_hashed_per_device(api, redis, keys):
    for flag, token, level in ((0, "app-token-123", 1), (1, "web-token-456", 0)):
        status, body = await api.post(
            "/user/token",
            {"uid": "amy", "token": token, "device_flag": flag, "device_level": level},
        )
        assert (status, body) == (200, {"status": 200})
    stored = {
        k.decode(): v.decode()
        for k, v in (await redis.hgetall(keys.tokens("amy"))).items()
    }
    assert stored == {
        "0": f"1:{hash_token('app-token-123')}",
        "1": f"0:{hash_token('web-token-456')}",
    }
    # no key of the deployment holds a token in clear
    async for key in redis.scan_iter(match=f"{keys.prefix}*"):
        raw = key + (await redis.dump(key) or b"")
        assert b"app-token-123" not in raw
        assert b"web-token-456" not in raw


async def test_a_new_token_replaces_the_old_one(api, login):
    amy = await login("amy")
    assert (
        await amy.get(
            "/channel/max_message_seq",
            login_uid="amy",
            channel_id="bob",
            channel_type=1,
        )
    )[0] == 200
    fresh = await login("amy")  # same device flag 0
    status, _ = await amy.get(
        "/channel/max_message_seq", login_uid="amy", channel_id="bob", channel_type=1
    )
    assert status == 401
    status, _ = await fresh.get(
        "/channel/max_message_seq", login_uid="amy", channel_id="bob", channel_type=1
    )
    assert status == 200


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"uid": "", "token": "t"}, "uid"),
        ({"uid": "a@b", "token": "t"}, "uid"),
        ({"uid": "a#b", "token": "t"}, "uid"),
        ({"uid": "a&b", "token": "t"}, "uid"),
        ({"uid": "____system", "token": "t"}, "system"),
        ({"uid": "amy", "token": ""}, "token"),
        ({"uid": "amy", "token": "x" * 1025}, "token"),
        ({"uid": "amy", "token": "t", "device_flag": -1}, "device_flag"),
        ({"uid": "amy", "token": "t", "device_level": 2}, "device_level"),
    ],
)
async def test_invalid_token_calls_are_400(api, redis, keys, body, fragment):
    status, reply = await api.post("/user/token", body)
    assert status == 400, reply
    assert fragment in reply["msg"], reply
    assert await redis.exists(keys.tokens(body["uid"] or "x")) == 0


async def test_a_banned_user_gets_status_19_and_no_token(api, redis, keys):
    await api.post("/channel", {"channel_id": "amy", "channel_type": 1, "ban": 1})
    status, body = await api.post("/user/token", {"uid": "amy", "token": "tok-amy-1"})
    assert (status, body) == (200, {"status": 19})
    assert await redis.exists(keys.tokens("amy")) == 0


async def test_system_uids(api, redis, keys):
    assert await api.get("/user/systemuids") == (200, [])
    assert await api.post("/user/systemuids_add", {"uids": ["b", "a"]}) == (
        200,
        {"status": 200},
    )
    assert await api.get("/user/systemuids") == (200, ["a", "b"])
    assert await api.post("/user/systemuids_remove", {"uids": ["a"]}) == (
        200,
        {"status": 200},
    )
    assert await api.get("/user/systemuids") == (200, ["b"])
    for path in ("/user/systemuids_add", "/user/systemuids_remove"):
        status, reply = await api.post(path, {"uids": []})
        assert status == 400, reply
        status, reply = await api.post(path, {"uids": ["x{y"]})
        assert status == 400, reply
    assert await api.get("/user/systemuids") == (200, ["b"])


async def test_a_banned_users_credentials_open_nothing(api, login):
    """Banned after his token was registered: his connects are refused, and so are
    his own HTTP calls (403, reason 19); lifting the ban lets them through again."""
    alice = await login("alice")
    query = {"channel_id": "bob", "channel_type": 1, "login_uid": "alice"}
    status, _ = await alice.get("/channel/max_message_seq", **query)
    assert status == 200
    ban = {"channel_id": "alice", "channel_type": 1}
    assert (await api.post("/channel/info", {**ban, "ban": 1}))[0] == 200
    status, body = await alice.get("/channel/max_message_seq", **query)
    assert status == 403
    assert body["reason_code"] == 19
    status, body = await alice.send("bob", 1)
    assert (status, body["reason_code"]) == (403, 19)
    # A wrong token stays a 401: the ban is told only to the holder of a token.
    resp = await api.client.get(
        "/channel/max_message_seq",
        params=query,
        headers={"uid": "alice", "token": "wrong"},
    )
    assert resp.status == 401
    assert (await api.post("/channel/info", {**ban, "ban": 0}))[0] == 200
    status, _ = await alice.get("/channel/max_message_seq", **query)
    assert status == 200
