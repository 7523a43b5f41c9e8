"""Connecting to Redis and checking the deployment it holds."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from broker.keys import Keys
from broker.settings import ConfigError, Settings

# Fail fast during an outage (the API answers 503) instead of hanging requests.
_RETRY = Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=2)
# A bounded pool that makes callers wait for a free connection: when 1,000 WebSocket
# clients reconnect at once after a restart, their token checks queue on these
# connections (each a sub-millisecond round trip) instead of opening a connection
# apiece and keeping hundreds of idle ones open against Redis's `maxclients`.
# (A plain pool would fail commands with "Too many connections" at its cap.)
MAX_CONNECTIONS = 128


def connect(
    url: str, *, timeout: float = 5.0, max_connections: int = MAX_CONNECTIONS
) -> Redis:
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,  # the longest wait for a free connection
        decode_responses=False,
        socket_connect_timeout=1.0,
        socket_timeout=timeout,
        retry=_RETRY,
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=10,
    )
    client = Redis(connection_pool=pool)
    client.auto_close_connection_pool = True  # aclose() closes the pool too
    return client


def keys_for(settings: Settings) -> Keys:
    return Keys(prefix=settings.key_prefix, shards=settings.shards)


async def check_deployment(redis: Redis, keys: Keys) -> None:
    """The shard count is fixed at first start; a different one refuses to start."""
    await redis.hsetnx(keys.config, "shards", keys.shards)
    stored = int(await redis.hget(keys.config, "shards") or keys.shards)
    if stored != keys.shards:
        raise ConfigError(
            f"JINDOU_SHARDS={keys.shards} but this Redis was set up with "
            f"{stored} shards; the shard count cannot change"
        )
