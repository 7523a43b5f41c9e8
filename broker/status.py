"""``jindou status``: what an operator checks first."""

from __future__ import annotations

import sys

from broker.redis_conn import connect, keys_for
from broker.settings import Settings


async def print_status(settings: Settings) -> None:
    redis = connect(settings.redis_url)
    try:
        keys = keys_for(settings)
        shards = await redis.hget(keys.config, "shards")
        nodes = await redis.zrange(keys.nodes, 0, -1, withscores=True)
        workers = await redis.zrange(keys.workers, 0, -1, withscores=True)
        out = sys.stdout
        out.write(f"shards: {int(shards) if shards else 'not set up yet'}\n")
        out.write(f"api nodes: {len(nodes)}\n")
        for node, beat in nodes:
            out.write(f"  {node.decode()}  last heartbeat {int(beat)} ms\n")
        out.write(f"workers: {len(workers)}\n")
        for worker, beat in workers:
            out.write(f"  {worker.decode()}  last heartbeat {int(beat)} ms\n")
    finally:
        await redis.aclose()
