"""Many small commands in one round trip for the fan-out, built on the hot-path
batch of ``broker.redis_batch`` (packed RESP, one write, replies as hiredis
parsed them, an error reply kept as its exception in its place).

A group message costs the worker one command per member (a conversation touch,
a presence lookup on a cache miss). Through a redis-py pipeline each of them was
packed, queued, looked up by name and parsed through a callback in Python: more
CPU than Redis spent running them (docs/design-notes.md, "Group fan-out cost").
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from broker.redis_batch import Arg, pack, run_packed

__all__ = ["PackedBatch", "bulk", "pack"]


def bulk(value: bytes | str | int) -> bytes:
    """One RESP bulk string (for commands assembled from packed parts)."""
    if isinstance(value, str):
        data = value.encode()
    elif isinstance(value, int):
        data = b"%d" % value
    else:
        data = value
    return b"$%d\r\n%s\r\n" % (len(data), data)


class PackedBatch:
    """Commands to send at once; ``run`` returns their replies in order."""

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def add(self, *args: Arg) -> None:
        self.parts.append(pack(*args))

    def add_packed(self, command: bytes) -> None:
        """A command packed beforehand (``pack``, or parts joined with ``bulk``)."""
        self.parts.append(command)

    def __len__(self) -> int:
        return len(self.parts)

    async def run(self, redis: Redis) -> list[Any]:
        """Send every command, read every reply (one pooled connection; a lost
        connection retries the batch: every fan-out command is idempotent)."""
        if not self.parts:
            return []
        return await run_packed(redis, self.parts)
