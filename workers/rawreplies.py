"""Clients for the hot path of the workers.

redis-py turns every stream entry into a dict and wraps every reply it reads in a
timeout context; on a dispatch backlog both cost more than the worker's own work.
The hot-path client leaves some replies as Redis sent them and reads without a
per-reply timeout: its callers bound each step with :func:`bounded` instead.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import anyio
from redis.asyncio import ConnectionPool, Redis

# One step of the hot path (a read, a batch's effects) may take this long.
STEP_TIMEOUT = 30.0

RAW_COMMANDS = ("XREADGROUP", "XAUTOCLAIM", "XRANGE")


def _as_sent(response: Any, **_options: Any) -> Any:
    return response


def hot_path_client(redis: Redis) -> Redis:
    """A client on its own pool, like ``redis`` but without socket read timeout.

    Unparsed replies: XREADGROUP ``{stream: [[id, [field, value, ...]], ...]}``
    (RESP3; RESP2: a list of ``[stream, entries]`` pairs) or None; XAUTOCLAIM
    ``[cursor, [[id, fields or None], ...], ...]``; XRANGE ``[[id, [field, value,
    ...]], ...]``.
    """
    source = redis.connection_pool
    kwargs = dict(source.connection_kwargs)
    kwargs["socket_timeout"] = None
    pool = ConnectionPool(
        connection_class=source.connection_class,
        max_connections=source.max_connections,
        **kwargs,
    )
    client = Redis(connection_pool=pool)
    for command in RAW_COMMANDS:
        client.set_response_callback(command, _as_sent)
    return client


def bounded() -> AbstractContextManager[anyio.CancelScope]:
    """The deadline of one hot-path step (raises TimeoutError when it passes)."""
    return anyio.fail_after(STEP_TIMEOUT)
