"""Making up for the kicks a node missed while it was unsubscribed (control.py).

After a subscription gap the node replays the logged kicks, each to the
connections that registered before it was logged. A connection whose registration
was under way during that replay had no log position yet, so the replay passed it
over; once registered it catches up on its own (:meth:`KickReplay.registered`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from broker.gateway.control import LOG_END, LogPosition, logged_kicks
from broker.gateway.hub import Hub
from broker.keys import Keys
from broker.metrics import REDIS_ERRORS

log = logging.getLogger(__name__)


class Positioned(Protocol):
    kicks_seen: LogPosition


class KickReplay:
    def __init__(self, redis: Redis, keys: Keys, hub: Hub) -> None:
        self.redis = redis
        self.keys = keys
        self.hub = hub
        self.gaps = 0  # subscription gaps so far: read before registering
        self._tasks: set[asyncio.Task[None]] = set()

    def after_gap(self) -> None:
        """The node is subscribed again after a gap: replay for every connection."""
        self.gaps += 1
        self._replay_soon(self.hub.connections())

    def registered(self, conn: Positioned, gaps_before: int) -> None:
        """``conn`` now has its log position; ``gaps_before`` is :attr:`gaps` from
        before its registration began. A gap that ended meanwhile was replayed
        without it."""
        if self.gaps != gaps_before:
            self._replay_soon([conn])

    async def settled(self) -> None:
        """Until the replays under way are done."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _replay_soon(self, conns: Iterable[Positioned]) -> None:
        oldest = min((c.kicks_seen for c in conns), default=LOG_END)
        if oldest >= LOG_END:
            return  # no connection, or none registered yet
        task = asyncio.get_running_loop().create_task(self._replay(oldest))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _replay(self, after: LogPosition) -> None:
        """Every kick logged after ``after`` reaches the connections that
        registered before it (the hub checks each one's position); replaying a kick
        again is harmless: a connection it kicked is closing."""
        try:
            kicks = await logged_kicks(self.redis, self.keys, after=after)
        except RedisError:
            REDIS_ERRORS.labels("gateway").inc()
            log.warning("could not replay the kicks of a subscription gap")
            return
        kicked = sum(self.hub.kick(kick, logged_at=at) for at, kick in kicks)
        if kicked:
            log.info("kicked %d connections whose kick was missed", kicked)
