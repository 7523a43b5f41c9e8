"""An api process as a node: its id, its heartbeat, its snowflake node number."""

from __future__ import annotations

import logging
import os
import random
import secrets
import socket
import time

import anyio
from redis.asyncio import Redis

from broker.keys import Keys
from broker.snowflake import MAX_NODE, Snowflake

log = logging.getLogger(__name__)

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


def new_node_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class SnowflakeLease:
    """Holds one of the 1,024 snowflake node numbers through a lease in Redis."""

    def __init__(self, redis: Redis, keys: Keys, lease_ms: int) -> None:
        self.redis = redis
        self.keys = keys
        self.lease_ms = lease_ms
        self.owner = secrets.token_hex(8)
        self.ids = Snowflake(0)
        self._renew = redis.register_script(_RENEW)
        self.number = -1

    async def acquire(self) -> Snowflake:
        start = random.randrange(MAX_NODE + 1)
        for offset in range(MAX_NODE + 1):
            number = (start + offset) % (MAX_NODE + 1)
            key = self.keys.snowflake_node(number)
            if await self.redis.set(key, self.owner, nx=True, px=self.lease_ms):
                self.number = number
                self.ids.node = number
                log.info("snowflake node number %d leased", number)
                return self.ids
        raise RuntimeError("all 1024 snowflake node numbers are leased")

    async def renew_forever(self) -> None:
        """Renew at a third of the lease; take a new number if the lease was lost."""
        while True:
            await anyio.sleep(self.lease_ms / 3000)
            try:
                key = self.keys.snowflake_node(self.number)
                if not await self._renew(keys=[key], args=[self.owner, self.lease_ms]):
                    log.warning("snowflake lease %d lost; leasing another", self.number)
                    await self.acquire()
            except Exception:  # keep renewing through Redis outages
                log.warning("snowflake lease renewal failed", exc_info=True)

    async def release(self) -> None:
        key = self.keys.snowflake_node(self.number)
        await self._renew(keys=[key], args=[self.owner, 1])


def now_ms() -> int:
    return int(time.time() * 1000)
