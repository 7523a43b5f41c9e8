"""WebSocket scenarios: B3 (send), B4 (end-to-end), B5 (fan-out), B8 (idle memory).

Each first checks that the api's WebSocket gateway listens (and, for delivery, that
workers deliver); where a part is missing the figure says so instead of a number.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import redis

from bench.cluster import (
    REPO_ROOT,
    Api,
    Cluster,
    children_cpu_seconds,
    cpu_seconds,
    rss_bytes,
    wait_healthy,
)
from bench.context import Context, run_python
from bench.figures import Figure, Goal, Target, unavailable
from bench.latency import percentile
from broker.channels import ChannelType
from broker.keys import Keys
from broker.redis_server import free_port
from broker.users import token_record

USER_TOKEN = "bench-user-token-0123456789"  # a throwaway test token
DEVICE_FLAG = 1
GENERATOR_PROCESSES = 2
NO_GATEWAY = (
    "the WebSocket gateway is not on this branch (nothing listens on JINDOU_WS_ADDR)"
)


def provision_tokens(cluster: Cluster, uids: Iterable[str]) -> None:
    """Device tokens through the users seam: ``jd:{u:<uid>}:tok`` (hashed)."""
    keys = Keys(shards=cluster.shards)
    record = token_record(USER_TOKEN, 0)
    client = redis.Redis.from_url(cluster.redis.url)
    try:
        with client.pipeline(transaction=False) as pipe:
            for uid in uids:
                pipe.hset(keys.tokens(uid), str(DEVICE_FLAG), record)
            pipe.execute()
    finally:
        client.close()


def add_members(cluster: Cluster, channel_id: str, uids: list[str]) -> None:
    """Group members through the channel keys of DESIGN §3 (members set)."""
    channel = Keys(shards=cluster.shards).channel(int(ChannelType.GROUP), channel_id)
    client = redis.Redis.from_url(cluster.redis.url)
    try:
        client.sadd(channel.members, *uids)
        client.hincrby(channel.meta, "members_ver", 1)
    finally:
        client.close()


def gateway(cluster: Cluster, count: int = 1) -> list[Api] | None:
    apis = cluster.start_apis(count)
    return apis if all(cluster.ws_listening(a) for a in apis) else None


def wsload(mode: str, url: str, timeout: float, **options: object) -> dict[str, object]:
    args = [mode, url, "--token", USER_TOKEN]
    for key, value in options.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return run_python("bench.wsload", args, timeout=timeout)


def wsload_parallel(
    mode: str,
    url: str,
    processes: int,
    connections: int,
    timeout: float,
    **options: object,
) -> list[dict[str, object]]:
    """``processes`` generator processes at once, ``connections`` split among them
    (uids numbered on from each one's ``--first``): one Python client process
    saturates before the gateway does."""
    share = -(-connections // processes)
    procs = []
    for first in range(0, connections, share):
        args = [
            mode,
            url,
            "--token",
            USER_TOKEN,
            "--first",
            str(first),
            "--connections",
            str(min(share, connections - first)),
        ]
        for key, value in options.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "bench.wsload", *args],
                cwd=REPO_ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        )
    results = []
    try:
        for proc in procs:
            out = proc.communicate(timeout=timeout)[0].decode()
            lines = [ln for ln in out.splitlines() if ln.startswith("JSON ")]
            if not lines:
                raise RuntimeError(f"bench.wsload {mode} failed: {out[-2000:]}")
            results.append(json.loads(lines[-1][5:]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


def _f(value: object) -> float:
    return float(value)  # type: ignore[arg-type]


# -- B3 ---------------------------------------------------------------------------
def b3(ctx: Context) -> list[Figure]:
    connections = ctx.scale(200, 50)
    count = ctx.scale(30_000, 5_000)
    raw: list[float] = []
    sends: list[float] = []
    p99: list[float] = []
    api_cpu: list[float] = []
    redis_cpu: list[float] = []
    missing = ""
    with ctx.cluster("B3") as cluster:
        apis = gateway(cluster)
        if apis is None:
            missing = NO_GATEWAY
        else:
            provision_tokens(cluster, [f"s{i}" for i in range(connections)])
        for i in range(ctx.runs):
            ctx.say(f"B3 run {i + 1}/{ctx.runs}: raw append script, pipelined")
            result = run_python(
                "bench.rawredis",
                ["append", cluster.redis.url, "--count", str(count)],
                timeout=120,
            )
            raw.append(_f(result["messages"]) / _f(result["seconds"]))
            if apis is None:
                continue
            ctx.say(f"B3 run {i + 1}/{ctx.runs}: WebSocket send, {connections} conns")
            api_before = cpu_seconds(apis[0].proc.pid)
            redis_before = cpu_seconds(cluster.redis.pid)
            results = wsload_parallel(
                "send",
                apis[0].ws_url,
                GENERATOR_PROCESSES,
                connections,
                ctx.duration + 60,
                duration=ctx.duration,
            )
            sent = max(sum(int(_f(r["sent"])) for r in results), 1)
            api_cpu.append((cpu_seconds(apis[0].proc.pid) - api_before) / sent * 1e6)
            redis_cpu.append(
                (cpu_seconds(cluster.redis.pid) - redis_before) / sent * 1e6
            )
            sends.append(sum(_f(r["rate"]) for r in results))
            p99.append(max(_f(r["p99_ms"]) for r in results))
    target = Target(Goal.RATIO_AT_LEAST, 0.4)
    base = "append script, pipelined redis-py"
    if missing:
        return [
            unavailable("B3", "WebSocket send rate", "msgs/s", missing, target),
            Figure(
                "B3",
                "Redis append ceiling (baseline alone)",
                "msgs/s",
                raw,
                note=f"{base}: 4 pipelines of 100 scripts in flight",
            ),
        ]
    return [
        Figure(
            "B3",
            "WebSocket send rate",
            "msgs/s",
            sends,
            raw,
            baseline_name=base,
            target=target,
            note=f"{connections} connections in {GENERATOR_PROCESSES} client "
            "processes, closed loop (one send in flight per connection)",
        ),
        Figure("B3", "send->result p99", "ms", p99),
        Figure("B3", "api CPU per WebSocket send", "us", api_cpu),
        Figure("B3", "redis-server CPU per WebSocket send", "us", redis_cpu),
    ]


# -- B4 ---------------------------------------------------------------------------
def delivery_works(cluster: Cluster, api: Api) -> bool:
    """One message from d0 to d1: does d1 get a recv within a few seconds?"""
    provision_tokens(cluster, ["r0", "s0"])
    try:
        result = wsload("e2e", api.ws_url, 60, connections=1, rate=5, duration=1)
    except Exception:
        return False
    return _f(result["received"]) > 0


B4_RATE = 2000  # the rate
B4_LIGHT_RATE = 200  # a rate well inside one small machine's capacity


def b4(ctx: Context) -> list[Figure]:
    pairs = ctx.scale(100, 50)
    with ctx.cluster("B4") as cluster:
        apis = gateway(cluster)
        if apis is None:
            return [unavailable("B4", "send->recv latency", "ms", NO_GATEWAY)]
        cluster.start_workers(1)
        if not delivery_works(cluster, apis[0]):
            return [
                unavailable(
                    "B4",
                    "send->recv latency",
                    "ms",
                    "no recv arrived: live delivery (workers -> gateway) "
                    "is not on this branch",
                )
            ]
        provision_tokens(cluster, [f"{p}{i}" for p in "rs" for i in range(pairs)])
        results: dict[int, list[dict[str, object]]] = {B4_RATE: [], B4_LIGHT_RATE: []}
        for i in range(ctx.runs):
            for rate, runs in results.items():
                ctx.say(f"B4 run {i + 1}/{ctx.runs}: {rate} msgs/s, {pairs} pairs")
                runs.append(
                    wsload(
                        "e2e",
                        apis[0].ws_url,
                        ctx.duration + 120,
                        connections=pairs,
                        rate=rate,
                        duration=ctx.duration,
                    )
                )
    figures = []
    for rate, runs in results.items():
        lost = sum(int(_f(r["sent"]) - _f(r["received"])) for r in runs)
        sent = sum(int(_f(r["sent"])) for r in runs)
        note = f"{pairs} sender/receiver pairs, 1 api, 1 worker"
        if lost:
            note += f"; {lost} of {sent} messages not received within 1 s of the end"
        at_target = rate == B4_RATE
        figures += [
            Figure(
                "B4",
                f"send->recv p50 at {rate} msgs/s",
                "ms",
                [_f(r["p50_ms"]) for r in runs],
                target=Target(Goal.AT_MOST, 5) if at_target else None,
                note=note,
            ),
            Figure(
                "B4",
                f"send->recv p99 at {rate} msgs/s",
                "ms",
                [_f(r["p99_ms"]) for r in runs],
                target=Target(Goal.AT_MOST, 25) if at_target else None,
            ),
            Figure(
                "B4",
                f"send->recv max at {rate} msgs/s",
                "ms",
                [_f(r["max_ms"]) for r in runs],
            ),
        ]
    return figures


# -- B5 ---------------------------------------------------------------------------
FAN_CHANNEL = "fan"
RECEIVER_PROCESSES = 2
# Sent at the first rate before the measured steps and not counted: without it the
# first step paid for the previous run's 500 clients being torn down (the bare
# broadcast's 10/s step was slower than its 20/s step in 6 of 8 runs).
FAN_WARMUP_S = 1.0


@dataclass(frozen=True, slots=True)
class FanoutStep:
    rate: float
    expected: int  # sent x members
    delivered: int
    seconds: float
    p99_ms: float

    @property
    def deliveries_per_s(self) -> float:
        return self.delivered / self.seconds if self.seconds else 0.0

    def within(self, p99_bound_ms: float) -> bool:
        return self.p99_ms <= p99_bound_ms and self.delivered >= 0.99 * self.expected


def fanout(
    url: str, members: int, receivers: int, rates: str, step_s: float, workdir: Path
) -> list[FanoutStep]:
    """Members online in ``receivers`` processes, one sender process at each rate."""
    share = -(-members // receivers)
    procs = []
    outputs = [workdir / f"fanout-{first}.json" for first in range(0, members, share)]
    try:
        for first, output in zip(range(0, members, share), outputs, strict=True):
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "bench.wsload",
                        "fanout-receive",
                        url,
                        "--token",
                        USER_TOKEN,
                        "--first",
                        str(first),
                        "--connections",
                        str(min(share, members - first)),
                        "--out",
                        str(output),
                    ],
                    cwd=REPO_ROOT,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                )
            )
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline().decode()
            if line.strip() != "READY":
                raise RuntimeError(
                    f"fan-out receiver failed: {line}"
                    f"{proc.stdout.read().decode()[-2000:]}"
                )
        sent = run_python(
            "bench.wsload",
            [
                "fanout-send",
                url,
                "--token",
                USER_TOKEN,
                "--channel",
                FAN_CHANNEL,
                "--rates",
                rates,
                "--duration",
                str(step_s),
                "--warmup",
                str(FAN_WARMUP_S),
            ],
            timeout=600,
        )
        latencies: dict[int, list[int]] = {}
        for proc, output in zip(procs, outputs, strict=True):
            out, _ = proc.communicate(input=b"", timeout=60)
            if proc.returncode != 0:
                raise RuntimeError(f"fan-out receiver failed: {out.decode()[-2000:]}")
            for step, values in json.loads(output.read_text()).items():
                latencies.setdefault(int(step), []).extend(values)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    steps = []
    for index, step in enumerate(sent["steps"]):
        values = sorted(latencies.get(index, []))
        steps.append(
            FanoutStep(
                rate=float(step["rate"]),
                expected=int(step["sent"]) * members,
                delivered=len(values),
                seconds=float(step["seconds"]),
                p99_ms=percentile([float(v) for v in values], 99) / 1000,
            )
        )
    return steps


def best_rate(steps: list[FanoutStep], p99_bound_ms: float = 100.0) -> float:
    """Deliveries/s of the fastest step that kept p99 within the bound (0 if none)."""
    return max(
        (s.deliveries_per_s for s in steps if s.within(p99_bound_ms)), default=0.0
    )


def b5(ctx: Context) -> list[Figure]:
    members = ctx.scale(500, 100)
    # Steps of ~1.4x above 50/s: with doubling steps a send path at 99% of the
    # baseline's capacity could score half of it (the figure is the last step
    # that kept p99 within 100 ms, for both sides alike).
    rates = "10,20,50,70,100,140,200,280,400" if not ctx.quick else "10,50,200"
    step = min(ctx.duration, 2.0)
    jindou: list[float] = []
    bare: list[float] = []
    jindou_peak: list[float] = []
    bare_peak: list[float] = []
    # CPU per delivery of each process kind, over a run's steps (warm-up included,
    # ~1% of the deliveries): where a saturated machine's cores go.
    cpu: dict[str, list[float]] = {
        k: [] for k in ("api", "worker", "redis", "clients", "bare", "bare_clients")
    }
    with ctx.cluster("B5") as cluster:
        apis = gateway(cluster)
        if apis is None:
            return [unavailable("B5", "fan-out deliveries", "deliveries/s", NO_GATEWAY)]
        (worker,) = cluster.start_workers(1)
        if not delivery_works(cluster, apis[0]):
            return [
                unavailable(
                    "B5",
                    "fan-out deliveries",
                    "deliveries/s",
                    "no recv arrived: live delivery is not on this branch",
                )
            ]
        uids = [f"m{i}" for i in range(members)]
        provision_tokens(cluster, [*uids, "fan-sender"])
        add_members(cluster, FAN_CHANNEL, [*uids, "fan-sender"])
        port = free_port()
        proc = cluster.spawn(
            [sys.executable, "-m", "bench.baseline_ws", str(port)], "baseline_ws"
        )
        wait_healthy(f"http://127.0.0.1:{port}", proc, logs=cluster.workdir)
        targets = {"jindou": apis[0].ws_url, "bare": f"ws://127.0.0.1:{port}/"}
        servers = {
            "jindou": {
                "api": apis[0].proc.pid,
                "worker": worker.pid,
                "redis": cluster.redis.pid,
            },
            "bare": {"bare": proc.pid},
        }
        for i in range(ctx.runs):
            for name, url in targets.items():
                ctx.say(
                    f"B5 run {i + 1}/{ctx.runs}: {name}, {members} members, "
                    f"rates {rates}"
                )
                before = {k: cpu_seconds(pid) for k, pid in servers[name].items()}
                clients_before = children_cpu_seconds()
                steps = fanout(
                    url, members, RECEIVER_PROCESSES, rates, step, cluster.workdir
                )
                delivered = max(sum(s.delivered for s in steps), 1)
                for kind, pid in servers[name].items():
                    used = cpu_seconds(pid) - before[kind]
                    cpu[kind].append(used / delivered * 1e6)
                clients = "clients" if name == "jindou" else "bare_clients"
                cpu[clients].append(
                    (children_cpu_seconds() - clients_before) / delivered * 1e6
                )
                (jindou if name == "jindou" else bare).append(best_rate(steps))
                (jindou_peak if name == "jindou" else bare_peak).append(
                    best_rate(steps, p99_bound_ms=float("inf"))
                )
                shown = ", ".join(
                    f"{s.rate:g}/s: p99 {s.p99_ms:.0f} ms ({s.delivered}/{s.expected})"
                    for s in steps
                )
                ctx.say(f"B5 {name}: {shown}")
    return [
        Figure(
            "B5",
            "fan-out deliveries at p99 <= 100 ms",
            "deliveries/s",
            jindou,
            bare,
            baseline_name="bare aiohttp broadcast",
            target=Target(Goal.RATIO_AT_LEAST, 0.6),
            note=f"{members} online members in {RECEIVER_PROCESSES} client "
            f"processes, send rates {rates} msgs/s, {step:g} s per step after "
            f"{FAN_WARMUP_S:g} s of unmeasured warm-up; 0 = no step kept p99 within "
            "100 ms",
        ),
        Figure(
            "B5",
            "fan-out peak deliveries (any latency)",
            "deliveries/s",
            jindou_peak,
            bare_peak,
            baseline_name="bare aiohttp broadcast",
        ),
        Figure(
            "B5",
            "api CPU per delivery",
            "us",
            cpu["api"],
            cpu["bare"],
            baseline_name="bare aiohttp broadcast",
            note="CPU of the process / deliveries over all rate steps of a run",
        ),
        Figure("B5", "worker CPU per delivery", "us", cpu["worker"]),
        Figure("B5", "redis-server CPU per delivery", "us", cpu["redis"]),
        Figure(
            "B5",
            "member clients' CPU per delivery",
            "us",
            cpu["clients"],
            cpu["bare_clients"],
            baseline_name="same clients, bare broadcast",
            note="the load generator's share of the cores: receiving, decoding and "
            "acking every recv (and the sender)",
        ),
    ]


# -- B8 ---------------------------------------------------------------------------
def b8(ctx: Context) -> list[Figure]:
    count = ctx.scale(10_000, 500)
    per_conn: list[float] = []
    with ctx.cluster("B8") as cluster:
        apis = gateway(cluster)
        if apis is None:
            return [
                unavailable(
                    "B8",
                    "RSS per idle connection",
                    "KiB",
                    NO_GATEWAY,
                    Target(Goal.AT_MOST, 16),
                )
            ]
        provision_tokens(cluster, [f"i{i}" for i in range(count)])
        for i in range(ctx.runs):
            ctx.say(f"B8 run {i + 1}/{ctx.runs}: {count} idle connections")
            # A fresh api per run: a process keeps the memory freed by the last
            # run's connections, and the next run would reuse it unseen.
            if i:
                cluster.stop(apis[0].proc)
                apis = cluster.start_apis(1)
                cluster.ws_listening(apis[0])
            api = apis[0]
            time.sleep(1.0)  # let the api settle after start-up
            before = rss_bytes(api.proc.pid)
            client = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.wsload",
                    "idle",
                    api.ws_url,
                    "--token",
                    USER_TOKEN,
                    "--connections",
                    str(count),
                ],
                cwd=REPO_ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            try:
                assert client.stdout is not None
                assert client.stdin is not None
                line = client.stdout.readline().decode()
                if line.strip() != "READY":
                    raise RuntimeError(
                        f"idle client failed: {line}"
                        f"{client.stdout.read().decode()[-2000:]}"
                    )
                time.sleep(1.0)
                after = rss_bytes(api.proc.pid)
                client.stdin.close()
                client.wait(60)
            finally:
                if client.poll() is None:
                    client.kill()
                    client.wait()
            per_conn.append((after - before) / count / 1024)
    return [
        Figure(
            "B8",
            "RSS per idle connection",
            "KiB",
            per_conn,
            target=Target(Goal.AT_MOST, 16),
            note=f"{count} authenticated idle connections on one api process; "
            "RSS growth of the api process / connections",
        ),
    ]
