"""The conversation endpoints against a real worker process."""

from broker.redis_conn import keys_for
from broker.users import store_token
from tests.workers.harness import join, leave, wait_drained
from tests.workers.test_fanout_smoke import b64, conversations, send


async def test_group_unread_counts_red_dot_from_others(api, redis, settings, workers):
    workers.start()
    await send(api, "a", "g", 2, "before join")  # nobody is a member yet
    await join(redis, settings, "g", ["a", "b"])
    await send(api, "a", "g", 2, "1", red_dot=1)
    await send(api, "a", "g", 2, "2", red_dot=0)
    await send(api, "a", "g", 2, "3", red_dot=1)
    await wait_drained(redis, settings)
    b = await conversations(api, "b")
    assert b["g"]["unread"] == 2  # red_dot only; the pre-join message is read
    assert b["g"]["last_msg_seq"] == 4
    assert (await conversations(api, "a"))["g"]["unread"] == 0  # own messages
    # Sending implies having read: b's own message moves his cursor.
    await send(api, "b", "g", 2, "4")
    await wait_drained(redis, settings)
    assert (await conversations(api, "a"))["g"]["unread"] == 1
    await send(api, "a", "g", 2, "5", red_dot=1)
    await wait_drained(redis, settings)
    b = await conversations(api, "b")
    assert b["g"]["unread"] == 1
    assert b["g"]["readed_to_msg_seq"] == 5
    assert (await conversations(api, "a"))["g"]["unread"] == 0


async def test_clear_set_unread_and_delete(api, redis, settings, workers):
    workers.start()
    await join(redis, settings, "g", ["a", "b"])
    for i in range(6):
        await send(api, "a", "g", 2, str(i), red_dot=1 if i % 2 == 0 else 0)
    await wait_drained(redis, settings)
    assert (await conversations(api, "b"))["g"]["unread"] == 3
    # setUnread 3 → cursor at 6-3=3: seqs 4..6 remain, red_dot at 5 only.
    status, body = await api.post(
        "/conversations/setUnread",
        {"uid": "b", "channel_id": "g", "channel_type": 2, "unread": 3},
    )
    assert (status, body) == (200, {"status": 200})
    assert (await conversations(api, "b"))["g"]["unread"] == 1
    # Forward only: asking for more unread changes nothing.
    await api.post(
        "/conversations/setUnread",
        {"uid": "b", "channel_id": "g", "channel_type": 2, "unread": 6},
    )
    assert (await conversations(api, "b"))["g"]["unread"] == 1
    status, _ = await api.post(
        "/conversations/clearUnread", {"uid": "b", "channel_id": "g", "channel_type": 2}
    )
    assert status == 200
    conv = (await conversations(api, "b"))["g"]
    assert conv["unread"] == 0
    assert conv["readed_to_msg_seq"] == 6
    # Delete hides the conversation until a newer message arrives.
    status, _ = await api.post(
        "/conversations/delete", {"uid": "b", "channel_id": "g", "channel_type": 2}
    )
    assert status == 200
    assert "g" not in await conversations(api, "b")
    await send(api, "a", "g", 2, "new", red_dot=1)
    await wait_drained(redis, settings)
    conv = (await conversations(api, "b"))["g"]
    assert conv["unread"] == 1
    assert [m["message_seq"] for m in conv["recents"]] == [7]  # nothing before delete


async def test_version_is_an_incremental_cursor(api, redis, settings, workers):
    workers.start()
    await send(api, "a", "b", 1, "x")
    await send(api, "a", "c", 1, "y")
    await wait_drained(redis, settings)
    status, first = await api.post("/conversation/sync", {"uid": "a", "msg_count": 1})
    assert status == 200
    assert [c["channel_id"] for c in first] == ["c", "b"]  # newest first
    newest = max(c["version"] for c in first)
    assert newest % 1_000_000 == 0
    await send(api, "a", "d", 1, "z")
    await wait_drained(redis, settings)
    status, changed = await api.post(
        "/conversation/sync", {"uid": "a", "msg_count": 1, "version": newest}
    )
    assert status == 200
    # Inclusive: the conversation at exactly `newest` comes again, plus the new one.
    assert [c["channel_id"] for c in changed] == ["d", "c"]
    status, none = await api.post(
        "/conversation/sync",
        {"uid": "a", "msg_count": 1, "version": changed[0]["version"] + 1},
    )
    assert (status, none) == (200, [])


async def test_sync_options(api, redis, settings, workers):
    workers.start()
    await join(redis, settings, "g", ["a", "b"])
    await send(api, "b", "g", 2, "g1")
    await send(api, "b", "a", 1, "p1")
    await send(api, "b", "a", 1, "p2", red_dot=0)
    await wait_drained(redis, settings)
    status, body = await api.post("/conversation/sync", {"uid": "a"})
    assert status == 200
    assert len(body) == 2
    assert all(c["recents"] == [] for c in body)  # msg_count=0: no recents, not []
    status, body = await api.post(
        "/conversation/sync", {"uid": "a", "msg_count": 5, "exclude_channel_types": [2]}
    )
    assert [c["channel_id"] for c in body] == ["b"]
    # last_msg_seqs: only messages after what the client has.
    status, body = await api.post(
        "/conversation/sync",
        {"uid": "a", "msg_count": 5, "last_msg_seqs": "b:1:1"},
    )
    conv = {c["channel_id"]: c for c in body}
    assert [m["message_seq"] for m in conv["b"]["recents"]] == [2]
    assert conv["b"]["recents"][0]["channel_id"] == "a"  # the sender's view
    assert conv["b"]["last_client_msg_no"]
    await api.post(
        "/conversations/clearUnread", {"uid": "a", "channel_id": "g", "channel_type": 2}
    )
    status, body = await api.post("/conversation/sync", {"uid": "a", "only_unread": 1})
    assert [c["channel_id"] for c in body] == ["b"]
    status, page1 = await api.post(
        "/conversation/sync", {"uid": "a", "page": 1, "page_size": 1}
    )
    status, page2 = await api.post(
        "/conversation/sync", {"uid": "a", "page": 2, "page_size": 1}
    )
    assert len(page1) == len(page2) == 1
    assert page1[0]["channel_id"] != page2[0]["channel_id"]
    status, body = await api.post("/conversation/channels", {"uid": "a"})
    assert status == 200
    assert sorted((c["channel_type"], c["channel_id"]) for c in body) == sorted(
        [(2, "g"), (1, next(c["channel_id"] for c in body if c["channel_type"] == 1))]
    )
    assert any("@" in c["channel_id"] for c in body)  # fake ids, as v2


async def test_sync_by_channels_includes_empty_ones(api, redis, settings, workers):
    workers.start()
    await join(redis, settings, "quiet", ["a"])
    await send(api, "b", "a", 1, "hello")
    await wait_drained(redis, settings)
    status, body = await api.post(
        "/conversation/syncByChannels",
        {
            "uid": "a",
            "channels": [
                {"channel_id": "quiet", "channel_type": 2},
                {"channel_id": "b", "channel_type": 1},
            ],
        },
    )
    assert status == 200
    conv = {c["channel_id"]: c for c in body}
    assert conv["quiet"]["last_msg_seq"] == 0
    assert conv["quiet"]["recents"] == []
    assert conv["b"]["unread"] == 1
    assert [m["message_seq"] for m in conv["b"]["recents"]] == [1]


async def test_leave_removes_the_conversation(api, redis, settings, workers):
    workers.start()
    await join(redis, settings, "g", ["a", "b"])
    await send(api, "a", "g", 2, "x")
    await wait_drained(redis, settings)
    assert "g" in await conversations(api, "b")
    await leave(redis, settings, "g", ["b"])
    await send(api, "a", "g", 2, "after leave")
    await wait_drained(redis, settings)
    assert "g" not in await conversations(api, "b")
    keys = keys_for(settings)
    assert await redis.zscore(keys.recent("b"), "2:g") is None


async def test_user_credentials_only_for_own_uid(api, redis, settings, workers):
    keys = keys_for(settings)
    await store_token(redis, keys, "a", 0, "token-of-a", 1)
    await join(redis, settings, "g", ["a"])
    headers = {"uid": "a", "token": "token-of-a"}
    resp = await api.client.post(
        "/conversation/sync", json={"uid": "a"}, headers=headers
    )
    assert resp.status == 200
    resp = await api.client.post(
        "/conversation/sync", json={"uid": "b"}, headers=headers
    )
    assert resp.status == 403
    assert (await resp.json())["status"] == 403
    # Not a member: no conversation can be created or read for that group.
    for path, body in [
        (
            "/conversations/clearUnread",
            {"uid": "a", "channel_id": "other", "channel_type": 2},
        ),
        (
            "/conversation/syncByChannels",
            {"uid": "a", "channels": [{"channel_id": "other", "channel_type": 2}]},
        ),
    ]:
        resp = await api.client.post(path, json=body, headers=headers)
        assert resp.status == 403, path
    resp = await api.client.post(
        "/conversation/sync", json={"uid": "a"}, headers={"uid": "a", "token": "bad"}
    )
    assert resp.status == 401


async def test_bad_input_is_a_400(api):
    cases = [
        ("/conversation/sync", {"uid": ""}),
        ("/conversation/sync", {"uid": "a", "last_msg_seqs": "nonsense"}),
        ("/conversation/sync", {"uid": "a", "msg_count": -1}),
        ("/conversation/sync", {"uid": "a", "version": "x"}),
        (
            "/conversations/setUnread",
            {"uid": "a", "channel_id": "g", "channel_type": 2, "unread": -1},
        ),
        (
            "/conversations/clearUnread",
            {"uid": "a", "channel_id": "g", "channel_type": 99},
        ),
        (
            "/conversations/clearUnread",
            {"uid": "a", "channel_id": "", "channel_type": 2},
        ),
        ("/conversations/delete", {"uid": "a@b", "channel_id": "g", "channel_type": 2}),
        (
            "/conversation/syncByChannels",
            {"uid": "a", "channels": [{"channel_id": "x{", "channel_type": 2}]},
        ),
    ]
    for path, body in cases:
        status, reply = await api.post(path, body)
        assert status == 400, (path, body, reply)
        assert reply["status"] == 400
        assert reply["msg"]


async def test_payload_is_base64_in_recents(api, redis, settings, workers):
    workers.start()
    await send(api, "a", "b", 1, "héllo")
    await wait_drained(redis, settings)
    conv = (await conversations(api, "b"))["a"]
    assert conv["recents"][0]["payload"] == b64("héllo")


async def test_membership_endpoints_drive_conversations(api, redis, settings, workers):
    """The real membership path (issue 3's endpoints) with the real worker."""
    workers.start()
    await send(api, "a", "team", 2, "before")
    status, body = await api.post(
        "/channel/subscriber_add",
        {"channel_id": "team", "channel_type": 2, "subscribers": ["a", "b"]},
    )
    assert status == 200, body
    await send(api, "a", "team", 2, "hello", red_dot=1)
    await wait_drained(redis, settings)
    conv = (await conversations(api, "b"))["team"]
    assert conv["unread"] == 1  # joined at seq 1: only the later message counts
    assert conv["last_msg_seq"] == 2
    status, body = await api.post(
        "/channel/subscriber_remove",
        {"channel_id": "team", "channel_type": 2, "subscribers": ["b"]},
    )
    assert status == 200, body
    await send(api, "a", "team", 2, "after", red_dot=1)
    await wait_drained(redis, settings)
    assert "team" not in await conversations(api, "b")
    assert (await conversations(api, "a"))["team"]["unread"] == 0
