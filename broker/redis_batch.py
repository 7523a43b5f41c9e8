"""A batch of raw commands on one pooled connection: the hot paths' pipeline.

redis-py's pipeline encodes every argument through its generic encoder, runs a
reply callback per command and sets up a timeout per reply; for the send path and
channel reads that was a third of the process' Python work. Here the commands
arrive packed (:func:`pack`), the batch gets one timeout, and replies come back as
hiredis parsed them (bytes, ints, lists), error replies as exception values.
A connection error retries the whole batch like redis-py's pipeline does (reads
are idempotent by nature); a caller whose commands must change before they run
again asks for no retry (``retry=False``: Store's appends, see _run_appends).
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

Arg = bytes | str | int

try:  # redis-py's internals, for the fast read path; any other version: the slow one
    from redis._parsers.hiredis import NOT_ENOUGH_DATA
    from redis._parsers.hiredis import _AsyncHiredisParser as _FastParser

    FAST_PARSER: type | None = _FastParser
except ImportError:  # pragma: no cover
    FAST_PARSER = None


def pack(*args: Arg) -> bytes:
    """One command in RESP, as redis-py would send it (ints in decimal)."""
    out = [b"*%d\r\n" % len(args)]
    add = out.append
    for arg in args:
        kind = type(arg)  # exact types first: this runs ~25 times per send
        data: bytes
        if kind is str:
            data = arg.encode()  # type: ignore[union-attr]
        elif kind is bytes:
            data = arg  # type: ignore[assignment]
        elif kind is int:
            data = b"%d" % arg  # type: ignore[str-format]
        else:
            data = _other(arg)
        add(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(out)


def _other(arg: object) -> bytes:
    if isinstance(arg, bool):  # as redis-py: a bool is a mistake
        raise TypeError("cannot send a bool to Redis")
    if isinstance(arg, str):
        return arg.encode()
    if isinstance(arg, bytes | bytearray | memoryview):
        return bytes(arg)
    if isinstance(arg, int):
        return b"%d" % arg
    raise TypeError(f"cannot send {type(arg).__name__} to Redis")


async def run_packed(
    redis: Redis, commands: list[bytes], *, retry: bool = True
) -> list[Any]:
    """Send ``commands`` in one write, read one reply per command.

    ``retry=False``: a broken connection or a timeout raises at once, for a caller
    whose commands must change before they may run again (Store's appends)."""
    pool = redis.connection_pool
    conn = await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        if not retry:  # a failed exchange has dropped the connection already
            return await _exchange(conn, commands)
        return await conn.retry.call_with_retry(  # type: ignore[no-any-return]
            lambda: _exchange(conn, commands),
            lambda _error: conn.disconnect(),
        )
    finally:
        await pool.release(conn)


async def _exchange(conn: Any, commands: list[bytes]) -> list[Any]:
    await conn.send_packed_command(commands)
    try:
        async with asyncio.timeout(conn.socket_timeout):
            reader = _hiredis_reader(conn)
            if reader is not None:
                return await _read_all(conn, reader, len(commands))
            replies: list[Any] = []
            for _ in commands:
                try:  # no timeout per reply (math.inf): the batch has one
                    replies.append(await conn.read_response(timeout=math.inf))
                except ResponseError as exc:
                    replies.append(exc)
            return replies
    except TimeoutError:
        await conn.disconnect(nowait=True)
        raise RedisTimeoutError("Timeout reading a batch of replies") from None


def _hiredis_reader(conn: Any) -> Any:
    """The connection's hiredis reader when replies can be taken from it directly,
    else None."""
    parser = conn._parser
    if FAST_PARSER is not None and type(parser) is FAST_PARSER:
        return getattr(parser, "_reader", None)
    return None


async def _read_all(conn: Any, reader: Any, count: int) -> list[Any]:
    """``count`` replies straight from hiredis: one ``gets()`` per reply and one
    socket read per chunk, instead of redis-py's per-reply coroutine, timeout and
    checks (~2 us a send). Error replies arrive as exception values, as hiredis
    was set up by redis-py to make them."""
    parser = conn._parser
    replies: list[Any] = []
    add = replies.append
    gets = reader.gets
    push = getattr(parser, "_hiredis_PushNotificationType", None)
    try:
        while len(replies) < count:
            reply = gets()
            if reply is NOT_ENOUGH_DATA:
                await parser.read_from_socket()
                continue
            if isinstance(reply, RedisConnectionError):
                raise reply
            if push is not None and isinstance(reply, push):
                # RESP3 push data (none is asked for on these connections) is not
                # a reply: hand it to redis-py as its own reader would.
                await parser.handle_push_response(reply)
                continue
            add(reply)
    except OSError as exc:
        await conn.disconnect(nowait=True)
        raise RedisConnectionError(
            f"Error while reading from Redis: {exc.args}"
        ) from exc
    except BaseException:
        await conn.disconnect(nowait=True)  # a batch half read: the connection is dirty
        raise
    if conn.health_check_interval:
        conn.next_health_check = (
            asyncio.get_running_loop().time() + conn.health_check_interval
        )
    return replies
