"""Live delivery hand-off to the api nodes (docs/design-notes.md, Delivery frames).

Connections of a user are ``conn_id → "node_id:device_flag:level"`` in
``jd:{u:<uid>}:conns``; a node whose heartbeat in ``jd:nodes`` is older than the
node lease counts as dead and its connections are ignored.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
from redis.asyncio import Redis

from broker.keys import Keys
from broker.protocol import Delivery, StoredMessage
from workers.packed import PackedBatch

NODES_CACHE_SECONDS = 1.0
LOOKUP_CHUNK = 1_000
_encode = msgspec.msgpack.Encoder().encode


def node_of(conn_value: bytes | str) -> str:
    text = conn_value.decode() if isinstance(conn_value, bytes) else conn_value
    node, _flag, _level = text.rsplit(":", 2)
    return node


def user_nodes(
    conns: Mapping[str, Iterable[bytes | str]], live_nodes: frozenset[str]
) -> dict[str, frozenset[str]]:
    """uid → the live nodes holding at least one of its connections (online only)."""
    result: dict[str, frozenset[str]] = {}
    for uid, values in conns.items():
        nodes = frozenset(node_of(v) for v in values) & live_nodes
        if nodes:
            result[uid] = nodes
    return result


def group_by_node(
    recipients: Iterable[str], nodes_of: Mapping[str, frozenset[str]]
) -> dict[str, list[str]]:
    """node → the recipients (sorted) it holds; one PUBLISH per node follows."""
    by_node: dict[str, list[str]] = defaultdict(list)
    for uid in sorted(recipients):
        for node in nodes_of.get(uid, ()):
            by_node[node].append(uid)
    return dict(by_node)


def delivery_frame(
    uids: list[str], seq: int, message: StoredMessage, origin_conn: str
) -> bytes:
    return _encode(
        Delivery(uids=uids, seq=seq, message=message, origin_conn=origin_conn)
    )


class Presence:
    """Reads connections and live nodes; the live-node list is cached briefly."""

    def __init__(self, redis: Redis, keys: Keys, node_stale_ms: int) -> None:
        self.redis = redis
        self.keys = keys
        self.node_stale_ms = node_stale_ms
        self._nodes: frozenset[str] = frozenset()
        self._nodes_at = 0.0

    async def live_nodes(self) -> frozenset[str]:
        if time.monotonic() - self._nodes_at > NODES_CACHE_SECONDS:
            cutoff = int(time.time() * 1000) - self.node_stale_ms
            members = await self.redis.zrangebyscore(self.keys.nodes, cutoff, "+inf")
            self._nodes = frozenset(_text(m) for m in members)
            self._nodes_at = time.monotonic()
        return self._nodes

    async def connections(self, uids: Iterable[str]) -> dict[str, list[Any]]:
        """uid → its connection values (only uids that have some)."""
        wanted = list(uids)
        found: dict[str, list[Any]] = {}
        # Chunks keep the event loop free for lease renewals on huge channels.
        for i in range(0, len(wanted), LOOKUP_CHUNK):
            chunk = wanted[i : i + LOOKUP_CHUNK]
            batch = PackedBatch()
            for uid in chunk:
                batch.add(b"HVALS", self.keys.connections(uid))
            replies = await batch.run(self.redis)
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
            found.update(
                (uid, list(vals))
                for uid, vals in zip(chunk, replies, strict=True)
                if vals
            )
        return found

    async def online(self, uids: Iterable[str]) -> dict[str, frozenset[str]]:
        """uid → live nodes, for the uids that are online."""
        conns = await self.connections(uids)
        if not conns:
            return {}
        return user_nodes(conns, await self.live_nodes())


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
