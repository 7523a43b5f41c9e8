"""kill -9 workers during a run: nothing lost, nothing counted twice (R2)."""

import re
import signal
import time

import anyio
import pytest

from broker.http.context import SERVICES
from broker.redis_conn import keys_for
from tests.workers.harness import SLOW_ONLY, wait_drained
from tests.workers.model import Model
from tests.workers.traffic import Traffic, check_against_model


async def recent_scores_match(redis, keys, model) -> list:
    """Each recipient's recent score is the ms of the channel's last message."""
    problems = []
    for fld, ch in model.channels.items():
        if not ch.messages:
            continue
        ms = await _last_ms(redis, keys, ch)
        for uid in ch.recipients():
            score = await redis.zscore(keys.recent(uid), fld)
            if score is None or int(score) != ms:
                problems.append((uid, fld, score, ms))
    return problems


async def _last_ms(redis, keys, ch) -> int:
    meta = keys.channel(ch.channel_type, ch.channel_id).meta
    return int(await redis.hget(meta, "last_ms"))


async def pending_of(redis, settings, pid: int) -> int:
    keys = keys_for(settings)
    total = 0
    for shard in range(settings.shards):
        try:
            summary = await redis.xpending(keys.dispatch(shard), "fanout")
        except Exception:
            continue
        for consumer in summary["consumers"]:
            if consumer["name"].decode().split("-")[-2] == str(pid):
                total += int(consumer["pending"])
    return total


async def kill_mid_batch(redis, settings, workers, tries: int = 200):
    """SIGKILL a worker, while it holds unacknowledged entries if we can catch it:
    freeze one (SIGSTOP), look at its pending entries, kill it if it has some, else
    let it go on and try again. Returns (pid killed, whether it held entries)."""
    for i in range(tries):
        victim = workers.alive[i % len(workers.alive)]
        victim.send_signal(signal.SIGSTOP)
        try:
            if await pending_of(redis, settings, victim.pid) > 0:
                workers.kill(victim)
                return victim.pid, True
        finally:
            if victim.poll() is None:
                victim.send_signal(signal.SIGCONT)
        await anyio.sleep(0.01)
    victim = workers.alive[0]  # batches are short: a plain crash then
    workers.kill(victim)
    return victim.pid, False


async def run_with_kills(api, redis, settings, workers, messages: int):
    keys = keys_for(settings)
    model = Model()
    traffic = Traffic(api, redis, settings, model, seed=7)
    await traffic.setup(users=40, pairs=30, groups=10)
    for _ in range(3):
        workers.start()
    kill_at = {messages * k // 4 for k in (1, 2, 3)}
    killed = []
    caught_mid_batch: list[bool] = []
    one_at_a_time = anyio.Lock()

    async def kill_and_replace() -> None:
        async with one_at_a_time:
            pid, mid_batch = await kill_mid_batch(redis, settings, workers)
            killed.append(pid)
            caught_mid_batch.append(mid_batch)
            workers.start()  # the supervisor brings a new one

    async with anyio.create_task_group() as tg:

        async def on_progress(n: int) -> None:
            # In the background: traffic must go on, or no batch is ever in flight.
            if n in kill_at:
                tg.start_soon(kill_and_replace)

        await traffic.run(messages, concurrency=8, on_progress=on_progress)
    end = time.monotonic()
    took = await wait_drained(redis, settings, timeout=30, workers=workers)
    assert time.monotonic() - end <= 30
    assert len(killed) == 3
    problems = await check_against_model(api.app[SERVICES], redis, keys, model)
    assert problems == []
    assert await recent_scores_match(redis, keys, model) == []
    # A worker killed holding entries: they were delivered again (recovery ran).
    # (Batches take milliseconds, so a kill does not always catch one.)
    if any(caught_mid_batch):
        logs = workers.logs()
        counts = [int(c) for c in re.findall(r"delivery count up to (\d+)", logs)]
        assert counts, "no pending entries were reclaimed"
        assert max(counts) >= 2
    return took


async def test_kill_workers_during_run(api, redis, settings, workers):
    await run_with_kills(api, redis, settings, workers, messages=1500)


@pytest.mark.slow
@SLOW_ONLY
@pytest.mark.timeout(600)
async def test_kill_workers_during_20000_messages(api, redis, settings, workers):
    start = time.monotonic()
    took = await run_with_kills(api, redis, settings, workers, messages=20_000)
    total = time.monotonic() - start
    print(f"20000 messages, 3 kills: {total:.1f}s; drained {took:.1f}s after the end")
    assert took <= 30


async def test_sigterm_mid_traffic_acks_its_batch_and_loses_nothing(
    api, redis, settings, workers
):
    keys = keys_for(settings)
    model = Model()
    traffic = Traffic(api, redis, settings, model, seed=11)
    await traffic.setup(users=20, pairs=15, groups=5)
    first = workers.start()
    workers.start()
    deadline = time.monotonic() + 20
    while await redis.zcard(keys.workers) < 2:  # both running, signal handlers set
        assert time.monotonic() < deadline
        await anyio.sleep(0.05)
    stopped = {}

    async def on_progress(n: int) -> None:
        if n == 300:
            first.send_signal(signal.SIGTERM)
            stopped["code"] = await anyio.to_thread.run_sync(first.wait, 20)
            stopped["pending"] = await pending_of(redis, settings, first.pid)

    await traffic.run(800, on_progress=on_progress)
    assert stopped == {"code": 0, "pending": 0}  # finished and acked, then left
    await wait_drained(redis, settings, workers=workers)
    assert await check_against_model(api.app[SERVICES], redis, keys, model) == []
