"""Live delivery through the real seam: a fake node registered in `nodes`, fake
connections in `conns`, and a subscription to `node:<id>`."""

import time

import anyio
import msgspec

from broker.http.context import SERVICES
from broker.messages import http_sender
from broker.protocol import Delivery, Header, SendRequest
from broker.redis_conn import keys_for
from tests.workers.harness import connect, join, leave, wait_drained


class FakeNode:
    def __init__(self, redis, settings, node_id="node-x"):
        self.redis = redis
        self.settings = settings
        self.keys = keys_for(settings)
        self.node_id = node_id
        self.frames: list[Delivery] = []

    async def beat(self):
        await self.redis.zadd(self.keys.nodes, {self.node_id: int(time.time() * 1000)})

    async def register(self, uids):
        await self.beat()
        for uid in uids:
            await connect(self.redis, self.settings, uid, f"c-{uid}", self.node_id)

    async def listen(self, task_status=anyio.TASK_STATUS_IGNORED):
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(self.keys.node_channel(self.node_id))
        task_status.started()
        last_beat = time.monotonic()
        try:
            while True:
                if time.monotonic() - last_beat > 1.0:  # beat like a real node
                    await self.beat()
                    last_beat = time.monotonic()
                msg = await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=0.2
                )
                if msg:
                    self.frames.append(
                        msgspec.msgpack.decode(msg["data"], type=Delivery)
                    )
        finally:
            await pubsub.aclose()

    async def wait_frames(self, predicate, timeout=20.0):
        deadline = time.monotonic() + timeout
        while not predicate(self.frames):
            assert time.monotonic() < deadline, f"only {len(self.frames)} frames"
            await anyio.sleep(0.05)


async def test_16_concurrent_senders_recipients_see_seqs_in_order(
    api, redis, settings, workers
):
    members = [f"m{i}" for i in range(20)]
    await join(redis, settings, "busy", members)
    node = FakeNode(redis, settings)
    await node.register(members)
    workers.start()
    workers.start()
    services = api.app[SERVICES]
    per_sender = 60
    async with anyio.create_task_group() as tg:
        await tg.start(node.listen)

        async def sender(i):
            for n in range(per_sender):
                req = SendRequest(
                    from_uid=members[i],
                    channel_id="busy",
                    channel_type=2,
                    payload=f"{i}-{n}".encode(),
                )
                await services.messages.send(req, http_sender(members[i]))

        async with anyio.create_task_group() as senders:
            for i in range(16):
                senders.start_soon(sender, i)
        total = 16 * per_sender
        await node.wait_frames(lambda f: len(f) >= total)
        tg.cancel_scope.cancel()
    seen: dict[str, list[int]] = {uid: [] for uid in members}
    for frame in node.frames:
        for uid in frame.uids:
            seen[uid].append(frame.seq)
    for uid in members:
        assert seen[uid] == list(range(1, total + 1)), uid


async def test_transient_and_command_messages_are_live_only(
    api, redis, settings, workers
):
    keys = keys_for(settings)
    await join(redis, settings, "room", ["a", "b", "c"])
    node = FakeNode(redis, settings)
    await node.register(["a", "b", "c"])
    workers.start()
    services = api.app[SERVICES]
    async with anyio.create_task_group() as tg:
        await tg.start(node.listen)
        # The live channel is subscribed once the worker owns the shard.
        shard = keys.shard(2, "room")
        deadline = time.monotonic() + 15
        while (await redis.pubsub_numsub(keys.live(shard)))[0][1] == 0:
            assert time.monotonic() < deadline
            await anyio.sleep(0.05)
        typing = SendRequest(
            header=Header(no_persist=1),
            from_uid="a",
            channel_id="room",
            channel_type=2,
            payload=b"typing",
        )
        result = await services.messages.send(typing, http_sender("a"))
        assert result.message_seq == 0
        cmd = SendRequest(
            header=Header(sync_once=1, no_persist=1),
            subscribers=["b"],
            payload=b"cmd",
        )
        await services.messages.send(cmd, http_sender("a"))
        await node.wait_frames(lambda f: len(f) >= 2)
        tg.cancel_scope.cancel()
    by_payload = {f.message.payload: f for f in node.frames}
    assert by_payload[b"typing"].uids == ["a", "b", "c"]
    assert by_payload[b"typing"].seq == 0
    assert by_payload[b"cmd"].uids == ["b"]
    # Nothing stored, no conversation touched.
    assert await redis.xlen(keys.channel(2, "room").log) == 0
    await wait_drained(redis, settings)
    assert await redis.zscore(keys.recent("b"), "2:room") is None


async def test_dead_node_connections_are_ignored(api, redis, settings, workers):
    keys = keys_for(settings)
    await join(redis, settings, "g", ["a", "b"])
    node = FakeNode(redis, settings)
    await node.register(["a"])
    await redis.zadd(keys.nodes, {"gone": 1})  # a heartbeat from long ago
    await connect(redis, settings, "b", "old", "gone")
    workers.start()
    async with anyio.create_task_group() as tg:
        await tg.start(node.listen)
        await api.post(
            "/message/send",
            {"from_uid": "a", "channel_id": "g", "channel_type": 2, "payload": "eA=="},
        )
        await node.wait_frames(lambda f: len(f) >= 1)
        await wait_drained(redis, settings)
        tg.cancel_scope.cancel()
    assert [f.uids for f in node.frames] == [["a"]]


async def test_member_cache_follows_membership_changes(api, redis, settings, workers):
    await join(redis, settings, "club", ["a", "b"])
    node = FakeNode(redis, settings)
    await node.register(["a", "b", "c"])
    workers.start()

    async def send_and_wait(n):
        await api.post(
            "/message/send",
            {
                "from_uid": "a",
                "channel_id": "club",
                "channel_type": 2,
                "payload": "eA==",
            },
        )
        await node.wait_frames(lambda f: len(f) >= n)

    async with anyio.create_task_group() as tg:
        await tg.start(node.listen)
        await send_and_wait(1)
        await join(redis, settings, "club", ["c"])  # members_ver moves
        await send_and_wait(2)
        await leave(redis, settings, "club", ["b"])
        await send_and_wait(3)
        tg.cancel_scope.cancel()
    assert [f.uids for f in node.frames] == [["a", "b"], ["a", "b", "c"], ["a", "c"]]
