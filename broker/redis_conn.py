"""Connecting to Redis and checking the deployment it holds."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from broker.keys import Keys
from broker.settings import ConfigError, Settings

# Fail fast during an outage (the API answers 503) instead of hanging requests.
_RETRY = Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=2)


def connect(url: str, *, timeout: float = 5.0, max_connections: int = 100) -> Redis:
    return Redis.from_url(
        url,
        decode_responses=False,
        max_connections=max_connections,
        socket_connect_timeout=1.0,
        socket_timeout=timeout,
        retry=_RETRY,
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=10,
    )


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
