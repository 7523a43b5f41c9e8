"""B6: worker throughput on a pre-filled dispatch backlog, 1 and 2 workers, next to
a raw XREADGROUP + XACK drain of the same backlog."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import redis

from bench.cluster import Cluster
from bench.context import Context, run_python
from bench.figures import Figure, Goal, Target, unavailable
from bench.loop import run
from bench.rawredis import append_all, person_messages
from broker.keys import Keys
from broker.redis_conn import connect

RAW_GROUP = "rawbench"
# A worker that has not touched the dispatch streams after this long is taken as
# one that does not consume them (the stub worker before fan-out landed).
FIRST_READ_TIMEOUT = 15.0
POLL = 0.1


async def _prefill(url: str, shards: int, count: int) -> int:
    client = connect(url, timeout=60)
    try:
        return await append_all(
            client,
            Keys(shards=shards),
            person_messages(count),
            batch=200,
            concurrency=4,
        )
    finally:
        await client.aclose()


@dataclass(frozen=True, slots=True)
class ShardProgress:
    started: bool  # a worker group has delivered at least one entry
    done: bool  # every entry delivered and acknowledged


def _worker_group(groups: list[dict[bytes | str, object]]) -> dict[str, object] | None:
    for group in groups:
        named = {
            (k.decode() if isinstance(k, bytes) else k): v for k, v in group.items()
        }
        name = named["name"]
        name = name.decode() if isinstance(name, bytes) else str(name)
        if not name.startswith(RAW_GROUP):
            return named
    return None


def progress(client: redis.Redis, keys: Keys) -> ShardProgress:
    """Whether the workers' consumer group started and finished every shard."""
    streams = [keys.dispatch(s) for s in range(keys.shards)]
    with client.pipeline(transaction=False) as pipe:
        for stream in streams:
            pipe.xinfo_stream(stream)
            pipe.xinfo_groups(stream)
        replies = pipe.execute(raise_on_error=False)
    started, done = False, True
    for info, groups in zip(replies[::2], replies[1::2], strict=True):
        if isinstance(info, Exception):
            continue  # a shard nothing was written to
        last = info["last-generated-id"]
        group = _worker_group(groups) if not isinstance(groups, Exception) else None
        if group is None:
            done = False
            continue
        delivered = group["last-delivered-id"]
        if delivered not in (b"0-0", "0-0"):
            started = True
        if delivered != last or int(str(group["pending"])) != 0:
            done = False
    return ShardProgress(started, done)


def worker_rate(
    cluster: Cluster, workers: int, backlog: int, timeout: float
) -> float | None:
    """Messages/s from the first delivery to the last ack; None if the workers never
    read the dispatch streams."""
    keys = Keys(shards=cluster.shards)
    client = redis.Redis.from_url(cluster.redis.url)
    try:
        launched = time.monotonic()
        cluster.start_workers(workers)
        first: float | None = None
        while True:
            now = time.monotonic()
            state = progress(client, keys)
            if state.started and first is None:
                first = now
            if state.done and first is not None:
                return backlog / max(now - first, POLL)
            if first is None and now - launched > FIRST_READ_TIMEOUT:
                return None
            if first is not None and now - first > timeout:
                raise RuntimeError(
                    f"{workers} worker(s) did not drain {backlog} entries in "
                    f"{timeout:g} s"
                )
            time.sleep(POLL)
    finally:
        client.close()


def b6(ctx: Context) -> list[Figure]:
    backlog = ctx.scale(200_000, 5_000)
    timeout = ctx.scale(300, 60)
    raw: list[float] = []
    rates: dict[int, list[float]] = {1: [], 2: []}
    missing = ""
    for i in range(ctx.runs):
        for workers in (1, 2):
            if missing:
                break
            with ctx.cluster(f"B6-{i}-{workers}") as cluster:
                ctx.say(f"B6 run {i + 1}/{ctx.runs}: pre-filling {backlog} messages")
                stored = run(_prefill(cluster.redis.url, cluster.shards, backlog))
                if stored != backlog:
                    raise RuntimeError(f"pre-fill stored {stored} of {backlog}")
                if workers == 1:
                    ctx.say(f"B6 run {i + 1}/{ctx.runs}: raw XREADGROUP+XACK drain")
                    result = run_python(
                        "bench.rawredis",
                        [
                            "drain",
                            cluster.redis.url,
                            "--shards",
                            str(cluster.shards),
                            "--group",
                            f"{RAW_GROUP}{i}",
                        ],
                        timeout=timeout,
                    )
                    if result["messages"] != backlog:
                        raise RuntimeError(
                            f"raw drain read {result['messages']} of {backlog}"
                        )
                    raw.append(result["messages"] / result["seconds"])
                ctx.say(f"B6 run {i + 1}/{ctx.runs}: {workers} worker(s)")
                rate = worker_rate(cluster, workers, backlog, timeout)
                if rate is None:
                    missing = (
                        "the workers on this branch do not consume the dispatch streams"
                    )
                else:
                    rates[workers].append(rate)
    target = Target(Goal.RATIO_AT_LEAST, 0.3)
    base_name = "raw XREADGROUP+XACK"
    if missing:
        return [
            unavailable("B6", "1 worker", "msgs/s", missing, target),
            unavailable("B6", "2 workers", "msgs/s", missing),
            Figure(
                "B6",
                "raw XREADGROUP+XACK drain (baseline alone)",
                "msgs/s",
                raw,
                note=f"backlog {backlog} person messages over 128 shards",
            ),
        ]
    scaling = statistics.median(rates[2]) / statistics.median(rates[1])
    return [
        Figure(
            "B6",
            "1 worker",
            "msgs/s",
            rates[1],
            raw,
            base_name,
            target,
            note=f"backlog {backlog} person messages",
        ),
        Figure(
            "B6",
            "2 workers (total)",
            "msgs/s",
            rates[2],
            raw,
            base_name,
            note=f"2 workers / 1 worker = {scaling:.2f}x",
        ),
    ]
