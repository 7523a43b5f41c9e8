"""Scenarios on the plain HTTP API: B1, B2 (send), B7 (messagesync), B9 (memory)."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import statistics
import sys
from pathlib import Path

import aiohttp
import redis

from bench.cluster import Cluster, cpu_seconds, wait_healthy
from bench.context import Context
from bench.figures import Figure, Goal, Target
from bench.httpgen import HttpRun, combined
from bench.loop import run
from bench.rawredis import append_all, channel_messages
from broker.channels import ChannelType
from broker.keys import Keys
from broker.redis_conn import connect
from broker.redis_server import free_port

SEND_CONNECTIONS = 64
SEND_PAYLOAD = json.dumps({"type": 1, "content": "hello " + "x" * 80}).encode()


def write_send_bodies(path: Path, count: int = 1000) -> Path:
    """Persisted person messages from u<i> to v<i> (one conversation each)."""
    payload = base64.b64encode(SEND_PAYLOAD).decode()
    lines = [
        json.dumps(
            {
                "header": {"red_dot": 1},
                "from_uid": f"u{i}",
                "channel_id": f"v{i}",
                "channel_type": 1,
                "payload": payload,
            }
        )
        for i in range(count)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def headers(token: str) -> dict[str, str]:
    return {"token": token, "Content-Type": "application/json"}


def stored_entries(cluster: Cluster) -> int:
    """Entries in every dispatch stream: one per message the api stored."""
    keys = Keys(shards=cluster.shards)
    client = redis.Redis.from_url(cluster.redis.url)
    try:
        with client.pipeline(transaction=False) as pipe:
            for shard in range(cluster.shards):
                pipe.xlen(keys.dispatch(shard))
            return int(sum(pipe.execute()))
    finally:
        client.close()


# The api with its appends answered in the process, not by Redis (B1X, B2X).
WITHOUT_REDIS = [sys.executable, "-m", "bench.api_without_redis"]


def http_send(
    ctx: Context, scenario: str, processes: int, *, without_redis: bool = False
) -> list[Figure]:
    """POST /message/send, persisted person messages, ``processes`` api processes,
    against the trivial msgspec endpoint with as many processes; runs alternate.
    ``without_redis``: the api's appends never reach Redis (its ceiling)."""
    bodies = write_send_bodies(ctx.root / f"{scenario}-bodies.txt")
    duration = ctx.duration
    with ctx.cluster(scenario) as cluster:
        apis = cluster.start_apis(
            processes, argv=WITHOUT_REDIS if without_redis else None
        )
        baseline_ports = [free_port() for _ in range(processes)]
        baseline_procs = []
        for i, port in enumerate(baseline_ports):
            proc = cluster.spawn(
                [sys.executable, "-m", "bench.baseline_http", str(port)],
                f"baseline{i}",
                env=cluster.env(BENCH_TOKEN=cluster.token),
            )
            wait_healthy(f"http://127.0.0.1:{port}", proc, logs=cluster.workdir)
            baseline_procs.append(proc)
        conns = SEND_CONNECTIONS // processes
        targets = {
            "jindou": [f"{a.url}/message/send" for a in apis],
            "baseline": [f"http://127.0.0.1:{p}/message/send" for p in baseline_ports],
        }
        # CPU seconds per message of each side's Python processes and of Redis:
        # steadier than rates on a shared machine, and it shows which one limits.
        pids = {
            "jindou": [a.proc.pid for a in apis],
            "baseline": [p.pid for p in baseline_procs],
        }
        results: dict[str, list[HttpRun]] = {"jindou": [], "baseline": []}
        cpu: dict[str, list[float]] = {"jindou": [], "baseline": [], "redis": []}
        for urls in targets.values():  # warm both up (imports, caches)
            ctx.http.run(urls, bodies, conns, ctx.warmup, headers(cluster.token))
        before = stored_entries(cluster)
        for i in range(ctx.runs):
            for name, urls in targets.items():
                ctx.say(
                    f"{scenario} run {i + 1}/{ctx.runs}: {name}, "
                    f"{processes} process(es), {duration:g} s"
                )
                used = [cpu_seconds(p) for p in (*pids[name], cluster.redis.pid)]
                run = combined(
                    ctx.http.run(urls, bodies, conns, duration, headers(cluster.token))
                )
                used = [
                    cpu_seconds(p) - u
                    for p, u in zip((*pids[name], cluster.redis.pid), used, strict=True)
                ]
                done = max(run.requests - run.errors, 1)
                results[name].append(run)
                cpu[name].append(sum(used[:-1]) / done * 1e6)
                if name == "jindou":
                    cpu["redis"].append(used[-1] / done * 1e6)
        stored = stored_entries(cluster) - before
    ok = sum(r.requests - r.errors for r in results["jindou"])
    errors = sum(r.errors for r in results["jindou"])
    note = f"generator {ctx.http.name}, {SEND_CONNECTIONS} connections"
    if without_redis:
        note += "; appends answered in the api, not sent to Redis (nothing stored)"
    if errors:
        note += f"; {errors} failed requests"
    if stored < ok and not without_redis:
        note += f"; only {stored} of {ok} acknowledged sends found stored"
    # B1X/B2X are a diagnosis (the api's ceiling), not one of the targets.
    rate_target = None if without_redis else Target(Goal.RATIO_AT_LEAST, 0.5)
    base = results["baseline"]
    figures = [
        Figure(
            scenario,
            "send rate",
            "msgs/s",
            [r.rate for r in results["jindou"]],
            [r.rate for r in base],
            baseline_name="msgspec endpoint",
            target=rate_target,
            note=note,
        ),
    ]
    figures += [
        Figure(
            scenario,
            "api CPU per message",
            "us",
            cpu["jindou"],
            cpu["baseline"],
            baseline_name="msgspec endpoint",
            note="user+system CPU of the api (baseline) processes / messages",
        ),
    ]
    figures.append(
        Figure(
            scenario,
            "load generator CPU per message",
            "us",
            [r.cpu_s / max(r.requests - r.errors, 1) * 1e6 for r in results["jindou"]],
            [r.cpu_s / max(r.requests - r.errors, 1) * 1e6 for r in base],
            baseline_name="msgspec endpoint",
            note=f"{ctx.http.name}'s own user+system CPU / messages: its share of "
            "the cores",
        )
    )
    if not without_redis:
        figures.append(
            Figure(
                scenario,
                "redis-server CPU per message",
                "us",
                cpu["redis"],
                note="where the next limit is: 1e6 / this = msgs/s one Redis core "
                "takes",
            )
        )
    if scenario == "B1":
        figures += [
            Figure(
                scenario,
                "send latency p50",
                "ms",
                [r.p50_ms for r in results["jindou"]],
                [r.p50_ms for r in base],
            ),
            Figure(
                scenario,
                "send latency p99",
                "ms",
                [r.p99_ms for r in results["jindou"]],
                [r.p99_ms for r in base],
            ),
        ]
    return figures


def b1(ctx: Context) -> list[Figure]:
    return http_send(ctx, "B1", 1)


def b2(ctx: Context) -> list[Figure]:
    return http_send(ctx, "B2", 2)


def b1x(ctx: Context) -> list[Figure]:
    return http_send(ctx, "B1X", 1, without_redis=True)


def b2x(ctx: Context) -> list[Figure]:
    return http_send(ctx, "B2X", 2, without_redis=True)


# -- B7 ---------------------------------------------------------------------------
HOT_CHANNEL = "hot"
SYNC_LIMIT = 100


def write_sync_bodies(path: Path, last_seq: int, count: int = 1000) -> Path:
    rng = random.Random(7)
    lines = [
        json.dumps(
            {
                "login_uid": "reader",
                "channel_id": HOT_CHANNEL,
                "channel_type": int(ChannelType.GROUP),
                "start_message_seq": rng.randint(1, last_seq - SYNC_LIMIT + 1),
                "end_message_seq": 0,
                "limit": SYNC_LIMIT,
                "pull_mode": 1,
            }
        )
        for _ in range(count)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


async def _prefill_channel(url: str, shards: int, count: int) -> None:
    client = connect(url, timeout=60)
    try:
        await append_all(
            client,
            Keys(shards=shards),
            channel_messages(count, HOT_CHANNEL, int(ChannelType.GROUP)),
        )
    finally:
        await client.aclose()


async def _sync_returns(url: str, token: str, body: bytes) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{url}/channel/messagesync", data=body, headers=headers(token)
        ) as resp,
    ):
        data = await resp.json()
        return len(data.get("messages", []))


def b7(ctx: Context) -> list[Figure]:
    """/channel/messagesync, limit 100, many readers of one hot channel."""
    count = 2_000
    bodies = write_sync_bodies(ctx.root / "B7-bodies.txt", count)
    with ctx.cluster("B7") as cluster:
        run(_prefill_channel(cluster.redis.url, cluster.shards, count))
        (api,) = cluster.start_apis(1)
        first = bodies.read_bytes().splitlines()[0]
        got = run(_sync_returns(api.url, cluster.token, first))
        if got != SYNC_LIMIT:
            raise RuntimeError(f"messagesync returned {got} messages, not {SYNC_LIMIT}")
        url = f"{api.url}/channel/messagesync"
        ctx.http.run(
            [url], bodies, SEND_CONNECTIONS, ctx.warmup, headers(cluster.token)
        )
        results = []
        api_cpu: list[float] = []
        redis_cpu: list[float] = []
        for i in range(ctx.runs):
            ctx.say(f"B7 run {i + 1}/{ctx.runs}: messagesync, {ctx.duration:g} s")
            api_before = cpu_seconds(api.proc.pid)
            redis_before = cpu_seconds(cluster.redis.pid)
            (result,) = ctx.http.run(
                [url], bodies, SEND_CONNECTIONS, ctx.duration, headers(cluster.token)
            )
            served = max(result.requests - result.errors, 1) * SYNC_LIMIT
            api_cpu.append((cpu_seconds(api.proc.pid) - api_before) / served * 1e6)
            redis_cpu.append(
                (cpu_seconds(cluster.redis.pid) - redis_before) / served * 1e6
            )
            results.append(result)
    ceiling = 1e6 / statistics.median(api_cpu)
    return [
        Figure(
            "B7",
            "messages served",
            "msgs/s",
            [r.rate * SYNC_LIMIT for r in results],
            target=Target(Goal.AT_LEAST, 100_000),
            note=f"{SEND_CONNECTIONS} connections, {SYNC_LIMIT} messages per "
            f"request from a {count}-message channel; requests/s = value / 100",
        ),
        Figure("B7", "messagesync latency p99", "ms", [r.p99_ms for r in results]),
        Figure(
            "B7",
            "api CPU per message served",
            "us",
            api_cpu,
            note=f"one api core, unshared, would serve ~{ceiling:,.0f} msgs/s",
        ),
        Figure("B7", "redis-server CPU per message served", "us", redis_cpu),
    ]


# -- B9 ---------------------------------------------------------------------------
B9_PAYLOAD = 200
B9_CHANNELS = 10


async def _send_many(url: str, token: str, count: int, first: int) -> int:
    """``count`` messages through ``/message/sendbatch``: one person message from
    ``m<k>`` to each of ``B9_CHANNELS`` receivers per request, 8 in flight."""
    payload = base64.b64encode(b"p" * B9_PAYLOAD).decode()
    subscribers = [f"n{i}" for i in range(B9_CHANNELS)]
    sem = asyncio.Semaphore(8)
    sent = 0

    async def one(session: aiohttp.ClientSession, n: int) -> None:
        nonlocal sent
        body = {
            "header": {"red_dot": 1},
            "from_uid": f"m{(first + n) % 10}",
            "subscribers": subscribers,
            "payload": payload,
        }
        async with sem, session.post(f"{url}/message/sendbatch", json=body) as resp:
            reply = await resp.json()
            if resp.status == 200 and not reply["fail_uids"]:
                sent += B9_CHANNELS

    async with aiohttp.ClientSession(headers={"token": token}) as session:
        await asyncio.gather(*(one(session, n) for n in range(count // B9_CHANNELS)))
    return sent


def used_memory(client: redis.Redis) -> int:
    """Memory Redis holds for data: used_memory without client and AOF buffers."""
    info = client.info("memory")
    return (
        int(info["used_memory"])
        - int(info.get("mem_aof_buffer", 0))
        - int(info.get("mem_clients_normal", 0))
    )


def key_kind(key: bytes) -> str:
    """Group keys by what they hold (see keys.py) for the memory breakdown."""
    text = key.decode(errors="replace")
    if ":ix:" in text:  # the lookup index's bucket hashes
        return "index"
    for suffix, kind in (
        (":log", "log"),
        (":meta", "meta"),
        (":badge", "badge"),
        (":dispatch", "dispatch"),
        (":conv", "conversations"),
        (":recent", "conversations"),
    ):
        if text.endswith(suffix):
            return kind
    return "other"


def breakdown(client: redis.Redis) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for key in client.scan_iter(count=1000):
        kind = key_kind(key)
        usage = client.memory_usage(key, samples=0) or 0
        sizes[kind] = sizes.get(kind, 0) + int(usage)
    return sizes


def b9(ctx: Context) -> list[Figure]:
    """Redis memory per stored message with a 200-byte payload."""
    per_batch = ctx.scale(20_000, 2_000) // B9_CHANNELS * B9_CHANNELS
    runs: list[float] = []
    with ctx.cluster("B9") as cluster:
        (api,) = cluster.start_apis(1)
        client = redis.Redis.from_url(cluster.redis.url)
        try:
            for i in range(ctx.runs):
                ctx.say(f"B9 run {i + 1}/{ctx.runs}: {per_batch} messages")
                before = used_memory(client)
                ok = run(_send_many(api.url, cluster.token, per_batch, i * per_batch))
                if ok != per_batch:
                    raise RuntimeError(f"only {ok} of {per_batch} sends succeeded")
                runs.append((used_memory(client) - before) / per_batch)
            sizes = breakdown(client)
        finally:
            client.close()
    total = ctx.runs * per_batch
    parts = ", ".join(f"{k} {v / total:,.0f}" for k, v in sorted(sizes.items()))
    retained = (sizes.get("log", 0) + sizes.get("index", 0)) / total
    return [
        Figure(
            "B9",
            "Redis memory per message",
            "bytes",
            runs,
            [float(B9_PAYLOAD)] * len(runs),
            baseline_name="payload",
            target=Target(Goal.RATIO_AT_MOST, 2.5),
            note=f"per message by key kind (MEMORY USAGE): {parts}; log+index "
            f"alone {retained:,.0f} B ({retained / B9_PAYLOAD:.2f}x payload); "
            f"{per_batch} messages per run via /message/sendbatch into "
            f"{B9_CHANNELS} person channels; no worker runs, so every message's "
            "dispatch entry is included (an unconsumed backlog)",
        ),
    ]
