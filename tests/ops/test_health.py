import time

import msgspec
from aiohttp.test_utils import TestClient, TestServer

from broker.health import Readiness, lease_check
from broker.http.app import create_app
from broker.http.context import READINESS, SERVICES
from broker.metrics import REDIS_ERRORS
from broker.redis_conn import connect
from broker.redis_server import RedisProcess
from tests.conftest import ApiClient


async def get(api, path, **headers):
    resp = await api.client.get(path, headers=headers)
    return resp.status, await resp.json()


async def test_health_is_public(api):
    status, body = await get(api, "/health")
    assert (status, body) == (200, {"status": "ok"})


async def test_readyz_is_public_and_ready_with_redis(api):
    status, body = await get(api, "/readyz")
    assert status == 200, body
    assert body == {"status": 200, "msg": "ready", "draining": False, "failures": {}}


async def test_readyz_fails_while_draining_and_runs_drain_hooks_once(api):
    calls = []

    async def hook():
        calls.append(1)

    readiness = api.app[READINESS]
    readiness.on_drain(hook)
    await readiness.start_draining()
    await readiness.start_draining()
    assert calls == [1]
    status, body = await get(api, "/readyz")
    assert status == 503
    assert body["draining"] is True
    assert body["failures"] == {"draining": "shutting down"}
    # Liveness is unaffected: the process is alive, only leaving.
    assert (await get(api, "/health"))[0] == 200


async def test_a_registered_check_makes_readiness_fail(api):
    async def pubsub():
        return "not subscribed to the node channel"

    api.app[READINESS].add("pubsub", pubsub)
    status, body = await get(api, "/readyz")
    assert status == 503
    assert body["failures"] == {"pubsub": "not subscribed to the node channel"}
    assert body["msg"] == "not ready: pubsub"


async def test_a_crashing_check_is_a_failure_not_a_500(api):
    async def broken():
        raise RuntimeError("boom")

    api.app[READINESS].add("broken", broken)
    status, body = await get(api, "/readyz")
    assert status == 503
    assert body["failures"]["broken"] == "check failed: RuntimeError"


async def test_readyz_fails_fast_when_redis_is_down(tmp_path, settings):
    server = RedisProcess(tmp_path / "r", appendonly=False).start()
    try:
        own = msgspec.structs.replace(settings, redis_url=server.url)
        async with TestClient(TestServer(create_app(own))) as client:
            api = ApiClient(client)
            assert (await get(api, "/readyz"))[0] == 200
            errors_before = REDIS_ERRORS.labels("readyz")._value.get()
            server.stop()
            started = time.monotonic()
            status, body = await get(api, "/readyz")
            elapsed = time.monotonic() - started
            assert status == 503
            assert body["failures"]["redis"].startswith("redis unreachable")
            assert elapsed < 2.0
            assert REDIS_ERRORS.labels("readyz")._value.get() > errors_before
    finally:
        server.stop()


async def test_readyz_reports_a_redis_that_does_not_answer_within_half_a_second(
    tmp_path, settings
):
    import os
    import signal

    server = RedisProcess(tmp_path / "r", appendonly=False).start()
    try:
        own = msgspec.structs.replace(settings, redis_url=server.url)
        async with TestClient(TestServer(create_app(own))) as client:
            api = ApiClient(client)
            assert (await get(api, "/readyz"))[0] == 200
            os.kill(server.pid, signal.SIGSTOP)  # alive but silent
            try:
                started = time.monotonic()
                status, body = await get(api, "/readyz")
                elapsed = time.monotonic() - started
            finally:
                os.kill(server.pid, signal.SIGCONT)
            assert status == 503
            assert "within 0.5 s" in body["failures"]["redis"]
            assert elapsed < 2.5
    finally:
        server.stop()


async def test_scripts_check_reloads_the_script_cache(tmp_path, settings):
    server = RedisProcess(tmp_path / "r", appendonly=False).start()
    try:
        own = msgspec.structs.replace(settings, redis_url=server.url)
        async with TestClient(TestServer(create_app(own))) as client:
            api = ApiClient(client)
            redis = connect(server.url)
            try:
                await redis.script_flush()  # what a Redis restart does
                scripts = api.app[SERVICES].store.scripts.registered()
                assert scripts
                assert not any(await redis.script_exists(*[s.sha for s in scripts]))
                assert (await get(api, "/readyz"))[0] == 200
                assert all(await redis.script_exists(*[s.sha for s in scripts]))
            finally:
                await redis.aclose()
    finally:
        server.stop()


async def test_worker_lease_check():
    owned = 0
    unowned = 3

    async def count_unowned():
        return unowned

    readiness = Readiness()
    readiness.add("leases", lease_check(lambda: owned, count_unowned))
    report = await readiness.report()
    assert not report.ready
    assert report.failures == {
        "leases": "holds no shard lease while 3 shards are unowned"
    }
    owned = 2
    assert (await readiness.report()).ready
    owned, unowned = 0, 0  # every shard has an owner: an idle spare is ready
    assert (await readiness.report()).ready
