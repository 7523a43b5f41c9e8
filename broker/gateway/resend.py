"""Re-sending unacknowledged persisted ``recv`` frames: one timer for the node.

Each connection keeps its unacknowledged frames (``Session.pending``); this sweep
walks only the connections that have some, so idle connections cost no timer, no
task and no wake-up. The sweep runs on ``loop.call_later`` while there is work.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Resending(Protocol):
    def resend_due(self, now: float) -> bool:
        """Re-send what is due; False once nothing is left to re-send."""
        ...


class Resender:
    def __init__(self, retry_ms: int) -> None:
        # Fine enough for the back-off steps (base, 2x base, ...), at most 1 s.
        self.interval = min(retry_ms / 4000, 1.0)
        self.watched: set[Resending] = set()
        self._timer: asyncio.TimerHandle | None = None

    def watch(self, conn: Resending) -> None:
        self.watched.add(conn)
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.interval, self._sweep)

    def forget(self, conn: Resending) -> None:
        self.watched.discard(conn)

    def _sweep(self) -> None:
        self._timer = None
        now = time.monotonic()
        for conn in list(self.watched):
            if not conn.resend_due(now):
                self.watched.discard(conn)
        if self.watched:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.interval, self._sweep)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
