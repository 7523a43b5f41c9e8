"""A client on the same connection pool whose replies to some commands are left
as Redis sent them (nested lists), for the hot path of the workers: redis-py turns
every stream entry into a dict, which costs more than the worker's own work."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis


def _as_sent(response: Any, **_options: Any) -> Any:
    return response


def raw_client(redis: Redis, *commands: str) -> Redis:
    """A client sharing ``redis``'s pool; ``commands`` reply unparsed.

    XREADGROUP: ``{stream: [[id, [field, value, ...]], ...]}`` (RESP3; RESP2: a
    list of ``[stream, entries]`` pairs), or None;
    XAUTOCLAIM: ``[cursor, [[id, fields or None], ...], ...]``;
    XRANGE: ``[[id, [field, value, ...]], ...]``.
    """
    raw = Redis(connection_pool=redis.connection_pool)
    for command in commands:
        raw.set_response_callback(command, _as_sent)
    return raw
