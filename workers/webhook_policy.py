"""When to send, retry and give up. Pure: no I/O."""

from __future__ import annotations

import random
from collections.abc import Callable

from broker.settings import WEBHOOK_EVENTS, webhook_event_names

JITTER = 0.2


def allowed_events(setting: str) -> frozenset[str]:
    """``JINDOU_WEBHOOK_EVENTS``: a comma-separated subset; empty means every event."""
    names = webhook_event_names(setting)
    return frozenset(names) if names else WEBHOOK_EVENTS


def retry_delay(
    attempt: int,
    base: float,
    *,
    uniform: Callable[[float, float], float] = random.uniform,
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based):
    ``base · 2^(attempt-1)``, ±20 % jitter so a receiver's recovery is not hit by a
    synchronized wave. With base 5 s and 8 attempts the 7 waits add up to ~10.5 min."""
    return float(base * 2 ** (attempt - 1) * uniform(1 - JITTER, 1 + JITTER))


def retry_schedule_span(max_attempts: int, base: float) -> float:
    """Nominal time from the first to the last attempt (no jitter)."""
    return float(sum(base * 2 ** (n - 1) for n in range(1, max_attempts)))


def is_delivered(status: int) -> bool:
    """Any 2xx counts; a 3xx is a failure since redirects are not followed."""
    return 200 <= status < 300


class ReceiverHealth:
    """Stop hammering a receiver that fails everything: after ``threshold`` failed
    attempts in a row, send one probe at a time, one per ``probe_interval``, until
    one succeeds. During an outage the backlog then waits in Redis without burning
    its attempts, and the worker stays idle instead of spinning through it."""

    def __init__(self, *, threshold: int, probe_interval: float) -> None:
        self.threshold = threshold
        self.probe_interval = probe_interval
        self.failures_in_row = 0
        self.last_failure = float("-inf")

    @property
    def down(self) -> bool:
        return self.failures_in_row >= self.threshold

    def record(self, delivered: bool, now: float) -> None:
        if delivered:
            self.failures_in_row = 0
        else:
            self.failures_in_row += 1
            self.last_failure = now

    def claim_limit(self, free_slots: int, in_flight: int, now: float) -> int:
        """How many jobs to start now."""
        if not self.down:
            return free_slots
        if in_flight or now < self.last_failure + self.probe_interval:
            return 0
        return 1

    def pause(self, now: float) -> float:
        """Seconds until the next probe may go (when no attempt is in flight)."""
        return max(0.0, self.last_failure + self.probe_interval - now)
