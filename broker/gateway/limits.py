"""Per-connection limits (reliability plan C9): a token bucket and a bounded outbox."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import anyio


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved. Pure but for the clock."""

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
    """Frames waiting for one connection's writer, bounded in count and bytes.

    ``put`` never waits: fan-out to one slow client must not delay the others.
    """

    def __init__(self, max_frames: int, max_bytes: int) -> None:
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.frames: deque[bytes] = deque()
        self.size = 0
        self._ready = anyio.Event()

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
        self._ready.set()

    def put_marker(self, frame: bytes) -> None:
        """Queue a tiny control marker past the bounds (it must never be refused)."""
        self.frames.append(frame)
        self.size += len(frame)
        self._ready.set()

    async def get(self) -> bytes:
        while not self.frames:
            self._ready = anyio.Event()
            await self._ready.wait()
        frame = self.frames.popleft()
        self.size -= len(frame)
        return frame
