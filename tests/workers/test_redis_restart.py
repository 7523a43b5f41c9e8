"""Workers survive a Redis restart and a lost consumer group (NOGROUP)."""

import msgspec

from broker.messages import http_sender
from broker.protocol import SendRequest
from broker.redis_conn import keys_for
from broker.redis_server import RedisProcess
from broker.services import close_services, open_services
from tests.workers.harness import Workers, wait_drained


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
        await close_services(services)
    finally:
        if workers is not None:
            workers.stop_all()
        server.stop()
