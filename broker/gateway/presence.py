"""Presence in Redis (design-notes "Users"): node heartbeats and connections.

``jd:nodes`` zset: node id → last heartbeat (ms). ``jd:{u:<uid>}:conns`` hash:
connection id → ``<node_id>:<device_flag>:<device_level>``; every write of it is
followed by an entry ``u=<uid>`` in ``jd:presence:changes`` (workers' caches).
A node whose heartbeat is older than ``STALE_BEATS`` intervals is dead: its
connections do not count.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio
from redis.asyncio import Redis

from broker.gateway.control import LOG_START, LogPosition, log_position
from broker.keys import Keys

STALE_BEATS = 3
# A node silent this long is gone: readers remove its leftover connections. A node
# that was only paused re-registers its connections on its next heartbeat.
DEAD_BEATS = 10
# Registry writes in flight at once: a burst of closes (a mass slow-consumer
# disconnect, a shutdown) must not open a Redis connection per socket.
MAX_CONCURRENT_WRITES = 16
# Changes kept for the workers' presence caches (approximate trim); a worker that
# may have missed trimmed changes drops its whole cache (workers/delivery.py).
CHANGES_MAXLEN = 100_000


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class ConnRecord:
    conn_id: str
    node_id: str
    device_flag: int
    device_level: int

    def encode(self) -> str:
        return f"{self.node_id}:{self.device_flag}:{self.device_level}"


def parse_conn(conn_id: str, value: str) -> ConnRecord | None:
    """Parse a conns hash value; None if it is not ``node:flag:level``."""
    node_id, _, rest = value.rpartition(":")
    node_id, _, flag = node_id.rpartition(":")
    try:
        return ConnRecord(conn_id, node_id, int(flag), int(rest))
    except ValueError:
        return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Presence:
    def __init__(self, redis: Redis, keys: Keys, heartbeat_ms: int) -> None:
        self.redis = redis
        self.keys = keys
        self.heartbeat_ms = heartbeat_ms
        self._writes = anyio.CapacityLimiter(MAX_CONCURRENT_WRITES)

    async def beat(self, node_id: str, connections: int = 0) -> bool:
        """Record a heartbeat (and the node's connection count, for `jindou status`);
        True if the node was missing from the node set."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self.keys.nodes, {node_id: now_ms()})  # type: ignore[unused-awaitable]
            pipe.hset(self.keys.node_connections, node_id, connections)  # type: ignore[unused-awaitable]
            added, _ = await pipe.execute()
        return bool(added)

    def _queue_change(self, pipe: Any, uid: str) -> None:
        """Every write of a ``conns`` hash is followed by a change entry, in the
        same pipeline (so after the write): workers cache presence until one."""
        pipe.xadd(
            self.keys.presence_changes,
            {"u": uid},
            maxlen=CHANGES_MAXLEN,
            approximate=True,
        )

    async def register_many(self, records: Sequence[tuple[str, ConnRecord]]) -> None:
        """Register again every connection of a node (after it was taken for dead)."""
        async with self._writes, self.redis.pipeline(transaction=False) as pipe:
            for uid, record in records:
                pipe.hset(  # type: ignore[unused-awaitable]
                    self.keys.connections(uid), record.conn_id, record.encode()
                )
                self._queue_change(pipe, uid)
            await pipe.execute()

    async def leave(self, node_id: str) -> None:
        await self.redis.zrem(self.keys.nodes, node_id)
        await self.redis.hdel(self.keys.node_connections, node_id)

    async def register(self, uid: str, record: ConnRecord) -> LogPosition:
        """Register a connection; returns the kick log's position at that moment
        (the kicks logged later are the ones meant for it too: control.py)."""
        async with self._writes, self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(  # type: ignore[unused-awaitable]
                self.keys.connections(uid), record.conn_id, record.encode()
            )
            self._queue_change(pipe, uid)
            pipe.xrevrange(self.keys.gateway_kicks, count=1)  # type: ignore[unused-awaitable]
            *_, newest = await pipe.execute()
        return log_position(newest[0][0]) if newest else LOG_START

    async def unregister(self, uid: str, conn_id: str) -> None:
        async with self._writes, self.redis.pipeline(transaction=False) as pipe:
            pipe.hdel(self.keys.connections(uid), conn_id)  # type: ignore[unused-awaitable]
            self._queue_change(pipe, uid)
            await pipe.execute()

    async def live_nodes(self) -> set[str]:
        oldest = now_ms() - STALE_BEATS * self.heartbeat_ms
        members = await self.redis.zrangebyscore(self.keys.nodes, oldest, "+inf")
        return {_text(m) for m in members}

    async def _remove_dead(self, dead: list[tuple[str, ConnRecord]]) -> None:
        """Drop connections of nodes silent for DEAD_BEATS, and those nodes."""
        nodes = {r.node_id for _, r in dead}
        async with self.redis.pipeline(transaction=False) as pipe:
            for node in nodes:
                pipe.zscore(self.keys.nodes, node)  # type: ignore[unused-awaitable]
            scores = await pipe.execute()
        cutoff = now_ms() - DEAD_BEATS * self.heartbeat_ms
        gone = {
            n for n, score in zip(nodes, scores, strict=True) if (score or 0) < cutoff
        }
        if not gone:
            return
        async with self._writes, self.redis.pipeline(transaction=False) as pipe:
            for uid, record in dead:
                if record.node_id in gone:
                    pipe.hdel(  # type: ignore[unused-awaitable]
                        self.keys.connections(uid), record.conn_id
                    )
                    self._queue_change(pipe, uid)
            pipe.zrem(self.keys.nodes, *gone)  # type: ignore[unused-awaitable]
            await pipe.execute()

    async def connections(
        self, uids: Sequence[str]
    ) -> list[tuple[str, list[ConnRecord]]]:
        """Each uid's connections on live nodes, in the order of ``uids``."""
        if not uids:
            return []
        live = await self.live_nodes()
        async with self.redis.pipeline(transaction=False) as pipe:
            for uid in uids:
                pipe.hgetall(self.keys.connections(uid))  # type: ignore[unused-awaitable]
            replies = await pipe.execute()
        out: list[tuple[str, list[ConnRecord]]] = []
        dead: list[tuple[str, ConnRecord]] = []
        for uid, reply in zip(uids, replies, strict=True):
            records: list[ConnRecord] = []
            for field, value in reply.items():
                record = parse_conn(_text(field), _text(value))
                if record is None:
                    continue
                if record.node_id in live:
                    records.append(record)
                else:
                    dead.append((uid, record))
            out.append((uid, sorted(records, key=lambda r: r.conn_id)))
        if dead:
            await self._remove_dead(dead)
        return out
