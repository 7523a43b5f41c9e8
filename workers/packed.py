"""Many small commands in one round trip, packed and read without redis-py's
per-command pipeline machinery.

A group message costs the worker one command per member (a presence lookup, a
conversation touch). Through a redis-py pipeline each of them is packed, queued,
looked up by name and parsed through a callback in Python: more CPU than Redis
spends running them. Here commands are packed straight to RESP and their replies
are taken as the parser returns them (bytes, ints, lists; an error reply is kept
as its exception, in its place, like ``execute(raise_on_error=False)``).
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

Arg = bytes | str | int


def bulk(value: Arg) -> bytes:
    if isinstance(value, str):
        data = value.encode()
    elif isinstance(value, int):
        data = b"%d" % value
    else:
        data = value
    return b"$%d\r\n%s\r\n" % (len(data), data)


def pack(*args: Arg) -> bytes:
    """One command as a RESP array of bulk strings."""
    return b"*%d\r\n" % len(args) + b"".join(map(bulk, args))


class PackedBatch:
    """Commands to send at once; ``run`` returns their replies in order."""

    __slots__ = ("count", "parts")

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.count = 0

    def add(self, *args: Arg) -> None:
        self.parts.append(pack(*args))
        self.count += 1

    def add_packed(self, command: bytes) -> None:
        """A command packed beforehand (``pack``), e.g. shared prefix reused."""
        self.parts.append(command)
        self.count += 1

    def __len__(self) -> int:
        return self.count

    async def run(self, redis: Redis) -> list[Any]:
        """Send every command, read every reply (on a connection of ``redis``'s
        pool; a connection that failed midway is dropped, never reused)."""
        if not self.count:
            return []
        pool = redis.connection_pool
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        replies: list[Any] = []
        try:
            await conn.send_packed_command(b"".join(self.parts), check_health=False)
            for _ in range(self.count):
                try:
                    replies.append(await conn.read_response())
                except ResponseError as exc:  # the reply was read: keep going
                    replies.append(exc)
        except BaseException:
            await conn.disconnect(nowait=True)
            raise
        finally:
            await pool.release(conn)
        return replies
