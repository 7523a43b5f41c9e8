"""Per-IP admission of WebSocket connections (reliability plan S9). Pure but for
the clock.

Two caps per client address: connections open at once, and connection attempts
a second (a token bucket with a burst). A refused upgrade never reaches the
WebSocket handshake: the gateway answers HTTP 429. 0 turns a cap off.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

from broker.gateway.limits import TokenBucket

# Idle buckets are dropped this often, so one-off addresses cost nothing for long.
PRUNE_EVERY_SECONDS = 10.0


class Refusal(NamedTuple):
    reason: str  # the metric label: ip_attempts or ip_connections
    msg: str


class IpLimits:
    def __init__(
        self,
        max_conns: int,
        attempts_rate: float,
        attempts_burst: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_conns = max_conns
        self.attempts_rate = attempts_rate
        self.attempts_burst = max(attempts_burst, 1)
        self.clock = clock
        self.open: dict[str, int] = {}
        self.attempts: dict[str, TokenBucket] = {}
        self._pruned = clock()

    def admit(self, ip: str) -> Refusal | None:
        """Count a connection of ``ip``; the refusal if it is over a cap (then
        nothing is counted)."""
        if self.attempts_rate > 0:
            self._prune()
            bucket = self.attempts.get(ip)
            if bucket is None:
                bucket = TokenBucket(
                    self.attempts_rate, self.attempts_burst, clock=self.clock
                )
                self.attempts[ip] = bucket
            if not bucket.take():
                return Refusal(
                    "ip_attempts",
                    f"too many connection attempts from {ip} "
                    f"(limit {self.attempts_rate:g}/s, burst {self.attempts_burst})",
                )
        current = self.open.get(ip, 0)
        if self.max_conns > 0 and current >= self.max_conns:
            return Refusal(
                "ip_connections",
                f"too many connections from {ip} (limit {self.max_conns})",
            )
        self.open[ip] = current + 1
        return None

    def release(self, ip: str) -> None:
        """A connection admitted by :meth:`admit` has ended."""
        left = self.open.get(ip, 0) - 1
        if left > 0:
            self.open[ip] = left
        else:
            self.open.pop(ip, None)

    def _prune(self) -> None:
        now = self.clock()
        if now - self._pruned < PRUNE_EVERY_SECONDS:
            return
        self._pruned = now
        refill = self.attempts_burst / self.attempts_rate
        idle = [ip for ip, b in self.attempts.items() if now - b.updated >= refill]
        for ip in idle:  # full again: a new bucket is the same
            del self.attempts[ip]
