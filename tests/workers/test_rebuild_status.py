"""rebuild-conversations equals what the workers maintained; jindou status."""

import subprocess
import sys
import time

import anyio

from broker.http.context import SERVICES
from broker.rebuild import channel_of_meta_key
from broker.redis_conn import keys_for
from broker.status import collect_status
from tests.conftest import REPO_ROOT, process_env
from tests.workers.harness import wait_drained
from tests.workers.model import Model
from tests.workers.traffic import Traffic, check_against_model


async def snapshot(redis, keys, users):
    state = {}
    for uid in sorted(users):
        conv = await redis.hgetall(keys.conversations(uid))
        recent = await redis.zrange(keys.recent(uid), 0, -1, withscores=True)
        state[uid] = (dict(conv), dict(recent))
    return state


def rebuild(settings) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "broker", "rebuild-conversations"],
        cwd=REPO_ROOT,
        env=process_env(settings),
        capture_output=True,
        timeout=120,
        check=True,
    )
    return result.stdout.decode()


async def test_rebuild_equals_worker_state(api, redis, settings, workers):
    keys = keys_for(settings)
    model = Model()
    traffic = Traffic(api, redis, settings, model, seed=3)
    await traffic.setup(users=25, pairs=20, groups=6)
    workers.start()
    await traffic.run(600)
    await wait_drained(redis, settings)
    users = model.users()
    maintained = await snapshot(redis, keys, users)
    # Lose what the workers derive: recents, own_last_seq, person records.
    for uid in users:
        await redis.delete(keys.recent(uid))
        for field, value in (await redis.hgetall(keys.conversations(uid))).items():
            if field.startswith(b"1:"):
                await redis.hdel(keys.conversations(uid), field)
            else:
                read, _own, deleted = value.decode().split(",")
                await redis.hset(keys.conversations(uid), field, f"{read},0,{deleted}")
    assert await snapshot(redis, keys, users) != maintained
    out = rebuild(settings)
    assert "rebuilt" in out
    assert await snapshot(redis, keys, users) == maintained
    assert await check_against_model(api.app[SERVICES], redis, keys, model) == []


async def test_rebuild_catches_up_without_workers(api, redis, settings):
    """Messages nobody fanned out yet: the rebuild gives what workers would."""
    keys = keys_for(settings)
    model = Model()
    traffic = Traffic(api, redis, settings, model, seed=5)
    await traffic.setup(users=10, pairs=8, groups=3)
    await traffic.run(200)
    rebuild(settings)
    assert await check_against_model(api.app[SERVICES], redis, keys, model) == []


def test_meta_key_parsing():
    from broker.keys import Keys

    keys = Keys(prefix="jd:", shards=16)
    meta = keys.channel(2, "a:b:meta").meta
    assert channel_of_meta_key(keys, meta) == (2, "a:b:meta")
    assert channel_of_meta_key(keys, "jd:{s1}:ch:2:x:meta") in (None, (2, "x"))
    assert channel_of_meta_key(keys, "other:thing") is None


async def test_status_shows_owner_lag_and_pending(api, redis, settings, workers):
    keys = keys_for(settings)
    # No worker yet: everything sent is lag.
    for i in range(5):
        await api.post(
            "/message/send",
            {
                "from_uid": "a",
                "channel_id": f"b{i}",
                "channel_type": 1,
                "payload": "eA==",
            },
        )
    report = await collect_status(redis, keys, settings)
    assert report.total_lag == 5
    assert all(s.owner == "" for s in report.shards)
    proc = workers.start()
    await wait_drained(redis, settings)
    report = await collect_status(redis, keys, settings)
    assert report.total_lag == 0
    assert sum(s.pending for s in report.shards) == 0
    assert {s.owner for s in report.shards} == {report.workers[0][0]}
    assert str(proc.pid) in report.workers[0][0]
    assert report.workers[0][2] is True
    result = subprocess.run(
        [sys.executable, "-m", "broker", "status"],
        cwd=REPO_ROOT,
        env=process_env(settings),
        capture_output=True,
        timeout=60,
        check=True,
    )
    out = result.stdout.decode()
    assert "fan-out lag: 0 entries" in out
    assert "workers: 1 live" in out
    assert report.workers[0][0] in out
    # Acknowledged dispatch entries are trimmed (at the latest after an idle read).
    deadline = time.monotonic() + 12
    while sum(s.length for s in (await collect_status(redis, keys, settings)).shards):
        assert time.monotonic() < deadline, "acknowledged entries were not trimmed"
        await anyio.sleep(0.1)


async def test_status_shows_api_nodes_and_their_connections(redis, settings):
    from broker.gateway.presence import Presence
    from broker.status import format_status

    keys = keys_for(settings)
    presence = Presence(redis, keys, settings.node_heartbeat_ms)
    await presence.beat("node-a", 3)
    await redis.zadd(keys.nodes, {"node-dead": 1})  # silent for ages
    out = format_status(await collect_status(redis, keys, settings))
    assert "api nodes: 1 live" in out
    assert "node-a  live" in out
    assert "3 connections" in out
    assert "node-dead  stale" in out
    await presence.leave("node-a")
    out = format_status(await collect_status(redis, keys, settings))
    assert "node-a" not in out
