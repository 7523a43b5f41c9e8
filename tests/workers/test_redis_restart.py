"""Workers survive a Redis restart and a lost consumer group (NOGROUP)."""

import time

import anyio
import msgspec

from broker.channels import person_channel_id
from broker.messages import http_sender
from broker.protocol import Header, SendRequest
from broker.redis_conn import keys_for
from broker.redis_server import RedisProcess
from broker.services import close_services, open_services
from tests.workers.harness import Workers, wait_drained
from tests.workers.test_delivery import FakeNode


async def send_many(services, n, start=0):
    for i in range(start, start + n):
        req = SendRequest(
            from_uid="a", channel_id=f"b{i % 7}", channel_type=1, payload=b"x"
        )
        await services.messages.send(req, http_sender("a"))


async def recents(redis, keys, uid="a") -> int:
    return await redis.zcard(keys.recent(uid))


async def test_worker_survives_redis_restart_and_nogroup(settings, tmp_path):
    server = RedisProcess(tmp_path / "redis", appendonly=True, appendfsync="always")
    server.start()
    workers = None
    try:
        own = msgspec.structs.replace(settings, redis_url=server.url)
        keys = keys_for(own)
        services = await open_services(own)
        workers = Workers(own, tmp_path, JINDOU_WORKER_LEASE_MS="600")
        workers.start()
        await send_many(services, 20)
        await wait_drained(services.redis, own, workers=workers)
        await close_services(services)
        # Restart Redis on the same port and data dir.
        server.kill()
        server.start()
        services = await open_services(own)
        await send_many(services, 20, start=20)
        await wait_drained(services.redis, own, workers=workers)
        # A lost consumer group is recreated at 0: nothing is skipped.
        for shard in range(own.shards):
            stream = keys.dispatch(shard)
            if await services.redis.exists(stream):
                await services.redis.xgroup_destroy(stream, "fanout")
        await services.redis.delete(keys.recent("b3"))
        await send_many(services, 7, start=40)
        await wait_drained(services.redis, own, workers=workers)
        assert await recents(services.redis, keys) == 7
        assert await services.redis.zcard(keys.recent("b3")) == 1
        assert all(p.poll() is None for p in workers.procs)  # never crashed
        await live_delivery_works(services, own)
        await close_services(services)
    finally:
        if workers is not None:
            workers.stop_all()
        server.stop()


async def live_delivery_works(services, settings):
    """After the restart the worker listens on the live channels again."""
    keys = keys_for(settings)
    node = FakeNode(services.redis, settings)
    await node.register(["a", "b1"])
    shard = keys.shard(1, person_channel_id("a", "b1"))
    deadline = time.monotonic() + 15
    while (await services.redis.pubsub_numsub(keys.live(shard)))[0][1] == 0:
        assert time.monotonic() < deadline, "live channel not subscribed again"
        await anyio.sleep(0.05)
    async with anyio.create_task_group() as tg:
        await tg.start(node.listen)
        req = SendRequest(
            header=Header(no_persist=1), from_uid="a", channel_id="b1",
            channel_type=1, payload=b"typing",
        )  # fmt: skip
        await services.messages.send(req, http_sender("a"))
        await node.wait_frames(lambda f: len(f) >= 1)
        tg.cancel_scope.cancel()
    assert node.frames[0].uids == ["a", "b1"]
    assert node.frames[0].seq == 0
