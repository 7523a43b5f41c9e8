"""S5: 1,000 random (user, channel) pairs where the user is not a member: no read
and no client send succeeds, over HTTP with the user's own credentials."""

from __future__ import annotations

import asyncio
import random

from broker.channels import person_channel_id
from tests.channels.helpers import b64

USERS = 30
GROUPS = 20
PAIRS = 1_000


async def test_non_members_never_read_or_send(api, login, redis, keys):
    rng = random.Random(20261125)
    uids = [f"u{i}" for i in range(USERS)]
    users = {uid: await login(uid) for uid in uids}
    groups = {f"grp{i}": set(rng.sample(uids, 6)) for i in range(GROUPS)}
    message_ids: dict[tuple[int, str], int] = {}
    for gid, members in groups.items():
        await api.post(
            "/channel",
            {"channel_id": gid, "channel_type": 2, "subscribers": sorted(members)},
        )
        status, body = await api.post(
            "/message/send",
            {
                "from_uid": "boss",
                "channel_id": gid,
                "channel_type": 2,
                "payload": b64("s"),
            },
        )
        message_ids[(2, gid)] = body["data"]["message_id"]
    # 1:1 channels between two users, each with one message
    dms = set()
    while len(dms) < 20:
        a, b = rng.sample(uids, 2)
        dms.add(person_channel_id(a, b))
    for fake in dms:
        a, b = fake.split("@")
        status, body = await users[a].send(b, 1, text="private")
        assert status == 200, body
        message_ids[(1, fake)] = body["data"]["message_id"]

    pairs = []
    while len(pairs) < PAIRS:
        uid = rng.choice(uids)
        if rng.random() < 0.8:
            gid = rng.choice(sorted(groups))
            if uid not in groups[gid]:
                pairs.append((uid, 2, gid))
        else:
            fake = rng.choice(sorted(dms))
            if uid not in fake.split("@"):
                pairs.append((uid, 1, fake))

    async def attempts(
        uid: str, channel_type: int, channel_id: str
    ) -> list[tuple[str, int]]:
        user = users[uid]
        ch = {"login_uid": uid, "channel_id": channel_id, "channel_type": channel_type}
        mid = message_ids[(channel_type, channel_id)]
        results = [
            (
                "messagesync",
                (await user.post("/channel/messagesync", {**ch, "limit": 50}))[0],
            ),
            ("max_message_seq", (await user.get("/channel/max_message_seq", **ch))[0]),
            ("last_message", (await user.get("/channel/last_message", **ch))[0]),
            (
                "messages",
                (
                    await user.post(
                        "/messages", {**ch, "message_seqs": [1], "message_ids": [mid]}
                    )
                )[0],
            ),
            ("message", (await user.post("/message", {**ch, "message_id": mid}))[0]),
        ]
        # a client send names the channel as the API does: the fake id is not a uid
        status, _ = await user.send(channel_id, channel_type, text="intrude")
        results.append(("send", status))
        if channel_type == 1:
            # and as the other party's uid, it is a different channel (his own DM)
            results.append(
                (
                    "dm_fetch_foreign_id",
                    (
                        await user.post(
                            "/message",
                            {
                                "login_uid": uid,
                                "channel_id": channel_id.split("@")[0],
                                "channel_type": 1,
                                "message_id": mid,
                            },
                        )
                    )[0],
                )
            )
        return results

    lengths_before = {
        key: await redis.xlen(keys.channel(*key).log) for key in message_ids
    }
    outcomes = []
    for start in range(0, len(pairs), 50):
        batch = await asyncio.gather(*(attempts(*p) for p in pairs[start : start + 50]))
        outcomes.extend(r for results in batch for r in results)
    successes = [(name, status) for name, status in outcomes if status < 300]
    assert successes == []
    assert len(pairs) == PAIRS
    # group and fake-id reads are refused as forbidden, not merely "not found"
    assert {
        status
        for name, status in outcomes
        if name != "send" and name != "dm_fetch_foreign_id"
    } == {403}
    assert {status for name, status in outcomes if name == "send"} <= {400, 403}
    lengths_after = {
        key: await redis.xlen(keys.channel(*key).log) for key in message_ids
    }
    assert lengths_after == lengths_before
