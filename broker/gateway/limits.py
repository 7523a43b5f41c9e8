"""Per-connection limits (reliability plan C9): a token bucket and a bounded outbox."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved. Pure but for the clock."""

    __slots__ = ("burst", "clock", "rate", "tokens", "updated")

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.clock = clock
        self.updated = clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class OutboxFull(Exception):
    """The client reads slower than it is sent to: it must be disconnected."""


class Outbox:
    """Frames waiting for a connection whose socket is backed up, bounded in count
    and bytes. A connection that keeps up never has one (frames are written at
    once); ``put`` never waits: fan-out to one slow client must not delay the
    others."""

    __slots__ = ("frames", "max_bytes", "max_frames", "size")

    def __init__(self, max_frames: int, max_bytes: int) -> None:
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.frames: deque[bytes] = deque()
        self.size = 0

    def __len__(self) -> int:
        return len(self.frames)

    def put(self, frame: bytes) -> None:
        if len(self.frames) >= self.max_frames or self.size + len(frame) > max(
            self.max_bytes, len(frame) if not self.frames else 0
        ):
            raise OutboxFull(
                f"outgoing queue full ({len(self.frames)} frames, {self.size} bytes)"
            )
        self.frames.append(frame)
        self.size += len(frame)

    def put_marker(self, frame: bytes) -> None:
        """Queue a tiny control marker past the bounds (it must never be refused)."""
        self.frames.append(frame)
        self.size += len(frame)

    def pop(self) -> bytes:
        frame = self.frames.popleft()
        self.size -= len(frame)
        return frame
