"""``jindou status``: what an operator checks first — does fan-out keep up?

Per shard: the owning worker, ``pending`` (delivered to a worker, not yet
acknowledged) and ``lag`` (every entry not yet acknowledged: pending plus not yet
read); then the live workers and api nodes.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from broker.gateway.presence import STALE_BEATS
from broker.keys import Keys
from broker.redis_conn import connect, keys_for
from broker.settings import Settings

GROUP = "fanout"
LAG_COUNT_CAP = 100_000


@dataclass(frozen=True, slots=True)
class ShardStatus:
    shard: int
    owner: str
    pending: int
    lag: int
    length: int


@dataclass
class StatusReport:
    shards_configured: int | None
    shards: list[ShardStatus] = field(default_factory=list)
    workers: list[tuple[str, int, bool]] = field(default_factory=list)
    nodes: list[tuple[str, int, bool]] = field(default_factory=list)
    connections: dict[str, int] = field(default_factory=dict)
    webhook_outbox: int = 0
    webhook_queued: int = 0
    webhook_dead: int = 0

    @property
    def total_lag(self) -> int:
        return sum(s.lag for s in self.shards)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _id(value: Any) -> tuple[int, int]:
    ms, _, seq = _text(value).partition("-")
    return int(ms), int(seq or 0)


async def shard_status(redis: Redis, keys: Keys, shard: int) -> ShardStatus:
    stream = keys.dispatch(shard)
    owner = _text(await redis.get(keys.lease(shard)) or b"")
    length = int(await redis.xlen(stream))
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError:  # no stream yet
        groups = []
    group = next((g for g in groups if _text(g["name"]) == GROUP), None)
    if group is None:
        return ShardStatus(shard, owner, 0, length, length)
    pending = int(group["pending"])
    unread = group.get("lag")
    if unread is None:  # Redis < 7 has no lag field: count what follows
        last = _text(group["last-delivered-id"])
        after: Any = await redis.xrange(stream, f"({last}", "+", count=LAG_COUNT_CAP)
        unread = len(after)
    return ShardStatus(shard, owner, pending, pending + int(unread), length)


async def collect_status(redis: Redis, keys: Keys, settings: Settings) -> StatusReport:
    shards = await redis.hget(keys.config, "shards")
    report = StatusReport(int(shards) if shards else None)
    now = int(time.time() * 1000)
    workers: Any = await redis.zrange(keys.workers, 0, -1, withscores=True)
    nodes: Any = await redis.zrange(keys.nodes, 0, -1, withscores=True)
    counts: Any = await redis.hgetall(keys.node_connections)
    report.connections = {_text(k): int(v) for k, v in counts.items()}
    for member, score in workers:
        beat = int(score)
        live = now - beat <= settings.worker_lease_ms
        report.workers.append((_text(member), beat, live))
    for member, score in nodes:
        beat = int(score)
        live = now - beat <= STALE_BEATS * settings.node_heartbeat_ms
        report.nodes.append((_text(member), beat, live))
    for shard in range(keys.shards):
        report.shards.append(await shard_status(redis, keys, shard))
    report.webhook_outbox = int(await redis.xlen(keys.webhook_outbox))
    report.webhook_queued = int(await redis.hlen(keys.webhook_jobs))
    report.webhook_dead = int(await redis.xlen(keys.webhook_dead))
    return report


def format_status(report: StatusReport) -> str:
    now = int(time.time() * 1000)
    lines = [
        f"shards: {report.shards_configured or 'not set up yet'}",
        f"fan-out lag: {report.total_lag} entries not yet acknowledged",
        f"{'shard':>5}  {'owner':<40} {'pending':>8} {'lag':>8}",
    ]
    for s in report.shards:
        owner = s.owner or "(none)"
        lines.append(f"{s.shard:>5}  {owner:<40} {s.pending:>8} {s.lag:>8}")
    for title, rows in (("workers", report.workers), ("api nodes", report.nodes)):
        live = sum(1 for _, _, ok in rows if ok)
        lines.append(f"{title}: {live} live")
        for name, beat, ok in rows:
            state = "live" if ok else "stale"
            conns = report.connections.get(name)
            extra = f", {conns} connections" if conns is not None else ""
            lines.append(
                f"  {name}  {state}, last heartbeat {now - beat} ms ago{extra}"
            )
    lines.append(
        f"webhooks: outbox {report.webhook_outbox}, queued {report.webhook_queued}, "
        f"dead letters {report.webhook_dead}"
        + (" (jindou webhooks replay)" if report.webhook_dead else "")
    )
    return "\n".join(lines) + "\n"


async def print_status(settings: Settings) -> None:
    redis = connect(settings.redis_url)
    try:
        report = await collect_status(redis, keys_for(settings), settings)
        sys.stdout.write(format_status(report))
    finally:
        await redis.aclose()
