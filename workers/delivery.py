"""Live delivery hand-off to the api nodes (docs/design-notes.md, Delivery frames).

Connections of a user are ``conn_id → "node_id:device_flag:level"`` in
``jd:{u:<uid>}:conns``; a node whose heartbeat in ``jd:nodes`` is older than the
node lease counts as dead and its connections are ignored.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import anyio
import msgspec
from redis.asyncio import Redis

from broker.keys import Keys
from broker.protocol import Delivery, StoredMessage
from workers.packed import PackedBatch

NODES_CACHE_SECONDS = 1.0
NODES_RECHECK_SECONDS = 0.1  # how stale the list may be when it lacks a node
LOOKUP_CHUNK = 1_000
MAX_CACHED_USERS = 200_000  # ~100 bytes each; cleared whole when full
OFFLINE: frozenset[str] = frozenset()
CHANGES_PAGE = 1_000
MAX_CHANGE_PAGES = 50
# Without a read for this long, changes may have been trimmed unseen (the gateway
# keeps ~100,000): start afresh.
CHANGES_GAP_SECONDS = 10.0
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
    """Reads connections and live nodes. The live-node list is cached briefly; the
    nodes of each user's connections are cached until the user's entry in the
    presence-changes stream (written by the gateway after every ``conns`` write)
    is read, which every lookup does first: a change made before a lookup began
    is always seen (design-notes "Presence cache")."""

    def __init__(self, redis: Redis, keys: Keys, node_stale_ms: int) -> None:
        self.redis = redis
        self.keys = keys
        self.node_stale_ms = node_stale_ms
        self._nodes: frozenset[str] = frozenset()
        self._nodes_at = 0.0
        self._nodes_of: dict[str, frozenset[str]] = {}  # uid -> its conns' nodes
        self._cursor: str | None = None  # last change applied; None: not started
        self._read_at = 0.0
        self._generation = 0  # moves whenever cached entries are dropped
        self._refreshing = anyio.Lock()

    async def live_nodes(self, max_age: float = NODES_CACHE_SECONDS) -> frozenset[str]:
        if time.monotonic() - self._nodes_at > max_age:
            cutoff = int(time.time() * 1000) - self.node_stale_ms
            members = await self.redis.zrangebyscore(self.keys.nodes, cutoff, "+inf")
            self._nodes = frozenset(_text(m) for m in members)
            self._nodes_at = time.monotonic()
        return self._nodes

    async def connections(self, uids: Iterable[str]) -> dict[str, list[Any]]:
        """uid -> its connection values (only uids that have some); uncached."""
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

    async def online(
        self, uids: Iterable[str], *, refreshed: bool = False
    ) -> dict[str, frozenset[str]]:
        """uid -> live nodes, for the uids that are online. ``refreshed``: the
        caller applied the changes (``queue_changes`` / ``apply_changes``) after
        it learnt of the messages these lookups are for."""
        wanted = list(uids)
        if not wanted:
            return {}
        if not refreshed:
            await self.refresh()
        generation = self._generation
        cache = self._nodes_of
        # Taken now, as of the refresh: another task may drop entries meanwhile.
        held: dict[str, frozenset[str]] = {}
        misses: list[str] = []
        for uid in wanted:
            nodes = cache.get(uid)
            if nodes is None:
                misses.append(uid)
            elif nodes:
                held[uid] = nodes
        if misses:
            conns = await self.connections(misses)
            found = {
                uid: frozenset(node_of(v) for v in conns[uid])
                if uid in conns
                else OFFLINE
                for uid in misses
            }
            # A change applied meanwhile may concern these: then do not keep them.
            if generation == self._generation:
                if len(cache) + len(found) > MAX_CACHED_USERS:
                    cache.clear()
                cache.update(found)
            held.update((uid, nodes) for uid, nodes in found.items() if nodes)
        live = await self.live_nodes()
        if held and not live.issuperset(frozenset().union(*held.values())):
            # A node we do not know as live: it may have just started.
            live = await self.live_nodes(NODES_RECHECK_SECONDS)
        result: dict[str, frozenset[str]] = {}
        for uid, nodes in held.items():
            nodes &= live
            if nodes:
                result[uid] = nodes
        return result

    async def refresh(self) -> None:
        """Drop the cached users whose connections changed since the last read."""
        async with self._refreshing:
            cursor = self._cursor
            if cursor is None or time.monotonic() - self._read_at > CHANGES_GAP_SECONDS:
                await self._restart()
                return
            stream = self.keys.presence_changes
            for _ in range(MAX_CHANGE_PAGES):
                batch = PackedBatch()
                batch.add(b"XRANGE", stream, cursor, cursor)
                batch.add(b"XRANGE", stream, f"({cursor}", b"+", b"COUNT", CHANGES_PAGE)
                here, changes = await batch.run(self.redis)
                for reply in (here, changes):
                    if isinstance(reply, Exception):
                        raise reply
                if cursor != "0-0" and not here:
                    # The last change we read is gone (trimmed past, or the
                    # stream was deleted): later ones may be gone too.
                    await self._restart()
                    return
                self._drop([fields for _id, fields in changes])
                if changes:
                    cursor = self._cursor = bytes(changes[-1][0]).decode()
                if len(changes) < CHANGES_PAGE:
                    self._read_at = time.monotonic()
                    return
            await self._restart()  # far behind: start afresh

    def queue_changes(self, batch: PackedBatch) -> str | None:
        """Queue the next changes on ``batch`` (another read of the caller's, one
        round trip); None if a full ``refresh`` is due instead."""
        cursor = self._cursor
        if cursor is None or time.monotonic() - self._read_at > CHANGES_GAP_SECONDS:
            return None
        stream = self.keys.presence_changes
        batch.add(b"XRANGE", stream, cursor, cursor)
        batch.add(b"XRANGE", stream, f"({cursor}", b"+", b"COUNT", CHANGES_PAGE)
        return cursor

    def apply_changes(self, cursor: str, here: Any, changes: Any) -> bool:
        """Apply what ``queue_changes`` read; False if a ``refresh`` must follow
        (the cursor entry is gone, more changes wait, or it is an error)."""
        if isinstance(here, Exception) or isinstance(changes, Exception):
            return False
        if cursor != "0-0" and not here:
            return False
        self._drop([fields for _id, fields in changes])
        if self._cursor == cursor:  # else another task read on meanwhile
            if changes:
                self._cursor = bytes(changes[-1][0]).decode()
            self._read_at = time.monotonic()
        return len(changes) < CHANGES_PAGE

    def _drop(self, changes: Sequence[Sequence[bytes]]) -> None:
        if not changes:
            return
        cache = self._nodes_of
        for fields in changes:  # [b"u", uid]
            for uid in fields[1::2]:
                cache.pop(_text(uid), None)
        # Also when none was cached: a lookup in flight may concern these users.
        self._generation += 1

    async def _restart(self) -> None:
        """Forget every cached user and read changes from the newest one on."""
        batch = PackedBatch()
        batch.add(b"XREVRANGE", self.keys.presence_changes, b"+", b"-", b"COUNT", 1)
        (newest,) = await batch.run(self.redis)
        if isinstance(newest, Exception):
            raise newest
        self._nodes_of.clear()
        self._generation += 1
        self._cursor = bytes(newest[0][0]).decode() if newest else "0-0"
        self._read_at = time.monotonic()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
