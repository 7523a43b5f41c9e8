"""The workers' side of the Delivery seam (design-notes "Delivery frames").

``DeliveryPublisher.publish`` is the live-delivery hand-off a fan-out worker calls per
message: it finds the recipients' connections on live nodes, publishes one
``Delivery`` per node on ``jd:node:<id>`` and returns the recipients with no live
connection (for ``msg.offline``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import msgspec
from redis.asyncio import Redis

from broker.channels import SYSTEM_UID
from broker.gateway.presence import Presence
from broker.keys import Keys
from broker.protocol import Delivery, StoredMessage

_encode = msgspec.msgpack.Encoder().encode


@dataclass(frozen=True, slots=True)
class Route:
    """Recipients grouped by the node that holds their connections."""

    by_node: dict[str, list[str]]
    offline: list[str]


class DeliveryPublisher:
    def __init__(self, redis: Redis, keys: Keys, heartbeat_ms: int) -> None:
        self.redis = redis
        self.keys = keys
        self.presence = Presence(redis, keys, heartbeat_ms)

    async def route(self, uids: Sequence[str]) -> Route:
        # The system uid never receives pushes (WuKongIM).
        wanted = [uid for uid in dict.fromkeys(uids) if uid != SYSTEM_UID]
        by_node: dict[str, list[str]] = {}
        offline: list[str] = []
        for uid, records in await self.presence.connections(wanted):
            if not records:
                offline.append(uid)
            for node in sorted({r.node_id for r in records}):
                by_node.setdefault(node, []).append(uid)
        return Route(by_node, offline)

    async def send(
        self, route: Route, seq: int, message: StoredMessage, origin_conn: str = ""
    ) -> int:
        """One PUBLISH per node, in one round trip; the number of frames."""
        if not route.by_node:
            return 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for node, uids in route.by_node.items():
                frame = Delivery(
                    uids=uids, seq=seq, message=message, origin_conn=origin_conn
                )
                pipe.publish(  # type: ignore[unused-awaitable]
                    self.keys.node_channel(node), _encode(frame)
                )
            await pipe.execute()
        return len(route.by_node)

    async def publish(
        self,
        uids: Sequence[str],
        seq: int,
        message: StoredMessage,
        origin_conn: str = "",
    ) -> list[str]:
        """Deliver live to every connected recipient; the uids that are offline."""
        route = await self.route(uids)
        await self.send(route, seq, message, origin_conn)
        return route.offline
