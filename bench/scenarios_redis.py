"""B6: worker throughput on a pre-filled dispatch backlog, 1 and 2 workers, next to
a raw XREADGROUP + XACK drain of the same backlog."""

from __future__ import annotations

import bisect
import statistics
import time

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


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _entry_id(value: object) -> tuple[int, int]:
    ms, _, seq = _text(value).partition("-")
    return int(ms), int(seq or 0)


def _worker_group(groups: object) -> dict[str, object] | None:
    """The workers' consumer group of a shard (any group but the raw baseline's)."""
    if not isinstance(groups, list):
        return None
    for group in groups:
        named = {_text(k): v for k, v in group.items()}
        if not _text(named["name"]).startswith(RAW_GROUP):
            return named
    return None


class Backlog:
    """The dispatch entries written by the pre-fill, by shard, to count how many the
    workers have processed: entries up to the group's last-delivered id, minus the
    pending ones (works on Redis 6.2, which has no entries-read/lag, and whether or
    not the workers trim)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.keys = Keys(shards=cluster.shards)
        self.client = redis.Redis.from_url(cluster.redis.url)
        self.ids: dict[str, list[tuple[int, int]]] = {}
        self.written = 0

    def close(self) -> None:
        self.client.close()

    def fill(self, count: int) -> None:
        stored = run(_prefill(self.cluster.redis.url, self.cluster.shards, count))
        if stored != count:
            raise RuntimeError(f"pre-fill stored {stored} of {count}")
        self.written += count
        for shard in range(self.keys.shards):
            stream = self.keys.dispatch(shard)
            known = self.ids.setdefault(stream, [])
            start = f"({known[-1][0]}-{known[-1][1]}" if known else "-"
            while True:
                entries = self.client.xrange(stream, start, "+", count=5000)
                if not entries:
                    break
                known += [_entry_id(e[0]) for e in entries]
                start = f"({_text(entries[-1][0])}"

    def processed(self) -> int:
        """Entries the workers' group has delivered and acknowledged."""
        streams = list(self.ids)
        with self.client.pipeline(transaction=False) as pipe:
            for stream in streams:
                pipe.xinfo_groups(stream)
            replies = pipe.execute(raise_on_error=False)
        done = 0
        for stream, groups in zip(streams, replies, strict=True):
            group = _worker_group(groups)
            if group is None:
                continue
            delivered = bisect.bisect_right(
                self.ids[stream], _entry_id(group["last-delivered-id"])
            )
            done += delivered - int(_text(group["pending"]))
        return done


def worker_rate(
    cluster: Cluster, backlog: Backlog, workers: int, window: float, timeout: float
) -> float | None:
    """Processed entries/s of ``workers`` fresh workers over ``window`` seconds from
    their first delivery (or until the backlog is drained); None if they never read
    the dispatch streams. The workers are stopped afterwards."""
    base = backlog.processed()
    procs = cluster.start_workers(workers)
    try:
        launched = time.monotonic()
        while backlog.processed() == base:
            if time.monotonic() - launched > FIRST_READ_TIMEOUT:
                return None
            time.sleep(POLL)
        began, start = time.monotonic(), backlog.processed()
        while True:
            time.sleep(POLL)
            now, done = time.monotonic(), backlog.processed()
            if done >= backlog.written or now - began >= window:
                return (done - start) / (now - began)
            if now - began > timeout:
                raise RuntimeError(f"{workers} worker(s) stalled")
    finally:
        for proc in procs:
            cluster.stop(proc)


def b6(ctx: Context) -> list[Figure]:
    size = ctx.scale(200_000, 10_000)
    window = ctx.scale(5, 2)
    # A deep backlog drains at ~10,000 entries/s per worker: keep enough for the next
    # window without re-filling (pre-filling is the slow part of B6).
    low_water = ctx.scale(60_000, 5_000)
    raw: list[float] = []
    rates: dict[int, list[float]] = {1: [], 2: []}
    with ctx.cluster("B6") as cluster:
        backlog = Backlog(cluster)
        try:
            ctx.say(f"B6: pre-filling a backlog of {size} person messages")
            backlog.fill(size)
            for i in range(ctx.runs):
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
                    timeout=300,
                )
                if result["messages"] != size:
                    raise RuntimeError(f"raw drain read {result['messages']} of {size}")
                raw.append(result["messages"] / result["seconds"])
            for i in range(ctx.runs):
                for workers in (1, 2):
                    left = backlog.written - backlog.processed()
                    if left < low_water:
                        ctx.say(f"B6: topping the backlog up by {size} messages")
                        backlog.fill(size)
                    ctx.say(
                        f"B6 run {i + 1}/{ctx.runs}: {workers} worker(s), "
                        f"{backlog.written - backlog.processed()} entries waiting"
                    )
                    rate = worker_rate(cluster, backlog, workers, window, 300)
                    if rate is None:
                        return _no_workers(raw, size)
                    rates[workers].append(rate)
        finally:
            backlog.close()
    target = Target(Goal.RATIO_AT_LEAST, 0.3)
    base_name = "raw XREADGROUP+XACK"
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
            note=f"backlog of {size} person messages over {cluster.shards} shards; "
            f"each figure over {window:g} s from the workers' first delivery",
        ),
        Figure(
            "B6",
            "2 workers (total)",
            "msgs/s",
            rates[2],
            raw,
            base_name,
            note=f"2 workers / 1 worker = {scaling:.2f}x; "
            f"per worker {statistics.median(rates[2]) / 2:,.0f} msgs/s",
        ),
    ]


def _no_workers(raw: list[float], size: int) -> list[Figure]:
    missing = "the workers on this branch do not consume the dispatch streams"
    return [
        unavailable(
            "B6", "1 worker", "msgs/s", missing, Target(Goal.RATIO_AT_LEAST, 0.3)
        ),
        unavailable("B6", "2 workers (total)", "msgs/s", missing),
        Figure(
            "B6",
            "raw XREADGROUP+XACK drain (baseline alone)",
            "msgs/s",
            raw,
            note=f"backlog of {size} person messages over 128 shards",
        ),
    ]
