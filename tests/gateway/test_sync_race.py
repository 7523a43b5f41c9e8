"""Live/sync boundary race (R9): clients join while messages flow, page through
``channel.messagesync`` over the socket while buffering live ``recv``s, and end with
every seq 1..N exactly once, without ever needing a gap-filling sync."""

from __future__ import annotations

import base64
import random

import anyio

from tests.gateway.conftest import RawClient

N = 200
CLIENTS = 10


class Follower:
    """The client side of the race: buffer live, sync by offset, merge by seq."""

    def __init__(self, client: RawClient) -> None:
        self.client = client
        self.by_seq: dict[int, str] = {}  # seq -> message id
        self.conflicts: list[int] = []
        self.gap_fills = 0
        self.via_live = 0

    def take(self, seq: int, message_id: str, *, live: bool) -> None:
        known = self.by_seq.setdefault(seq, message_id)
        if known != message_id:
            self.conflicts.append(seq)
        elif live:
            self.via_live += 1

    async def sync_from(self, start: int) -> int:
        """Pull pages of 10 from ``start``; the highest seq seen."""
        high = start - 1
        while True:
            reply = await self.client.call(
                "channel.messagesync",
                {
                    "channel_id": "race",
                    "channel_type": 2,
                    "start_message_seq": high + 1,
                    "pull_mode": 1,
                    "limit": 10,
                },
            )
            page = reply["result"]
            for m in page["messages"]:
                self.take(m["message_seq"], m["message_idstr"], live=False)
                high = max(high, m["message_seq"])
            self.drain_live()
            if not page["more"]:
                return high
            await anyio.sleep(0.01)  # let the live flow overtake the pages

    def drain_live(self) -> None:
        keep = []
        for note in self.client.notes:
            if note["method"] == "recv":
                p = note["params"]
                self.take(p["messageSeq"], p["messageId"], live=True)
            else:
                keep.append(note)
        self.client.notes[:] = keep

    async def follow(self, done: anyio.Event) -> None:
        await self.sync_from(1)
        while not (done.is_set() and len(self.by_seq) >= N):
            try:
                note = await self.client.notification("recv", timeout=3)
            except TimeoutError:
                if not done.is_set():
                    continue
                # Nothing more comes live: only a real gap brings us here.
                self.gap_fills += 1
                missing = [s for s in range(1, N + 1) if s not in self.by_seq]
                await self.sync_from(missing[0])
                continue
            p = note["params"]
            self.take(p["messageSeq"], p["messageId"], live=True)


async def test_clients_syncing_during_live_flow_end_with_every_seq_once(
    node, fanout, redis
):
    keys = node.services.keys
    uids = [f"f{i}" for i in range(CLIENTS)]
    await redis.sadd(keys.channel(2, "race").members, *uids)
    payload = base64.b64encode(b'{"type":1,"content":"r"}').decode()
    followers: list[Follower] = []
    done = anyio.Event()

    async def produce() -> None:
        for i in range(N):
            status, body = await node.api.post(
                "/message/send",
                {
                    "from_uid": "src",
                    "channel_id": "race",
                    "channel_type": 2,
                    "payload": payload,
                    "client_msg_no": f"n{i}",
                },
            )
            assert status == 200, body
            await anyio.sleep(0.005)
        done.set()

    async def join(uid: str, tg) -> None:
        await anyio.sleep(random.uniform(0, 1.0))
        follower = Follower(await node.login(uid))
        followers.append(follower)
        tg.start_soon(follower.follow, done)

    with anyio.fail_after(40):
        async with anyio.create_task_group() as tg:
            tg.start_soon(produce)
            for uid in uids:
                tg.start_soon(join, uid, tg)
    assert len(followers) == CLIENTS
    for f in followers:
        assert sorted(f.by_seq) == list(range(1, N + 1))
        assert f.conflicts == []
        assert f.gap_fills == 0  # live + sync covered everything between them
    # The race really happened: messages came in live as well as by sync.
    assert sum(f.via_live for f in followers) > 0
