"""``jindou status``: what an operator checks first."""

from __future__ import annotations

import sys
from typing import Any

from broker.redis_conn import connect, keys_for
from broker.settings import Settings


def _members(reply: Any) -> list[tuple[str, int]]:
    return [(member.decode(), int(score)) for member, score in reply]


async def print_status(settings: Settings) -> None:
    redis = connect(settings.redis_url)
    try:
        keys = keys_for(settings)
        shards = await redis.hget(keys.config, "shards")
        nodes = _members(await redis.zrange(keys.nodes, 0, -1, withscores=True))
        workers = _members(await redis.zrange(keys.workers, 0, -1, withscores=True))
        out = sys.stdout
        out.write(f"shards: {int(shards) if shards else 'not set up yet'}\n")
        out.write(f"api nodes: {len(nodes)}\n")
        for node, beat in nodes:
            out.write(f"  {node}  last heartbeat {beat} ms\n")
        out.write(f"workers: {len(workers)}\n")
        for worker, beat in workers:
            out.write(f"  {worker}  last heartbeat {beat} ms\n")
        outbox = await redis.xlen(keys.webhook_outbox)
        queued = await redis.hlen(keys.webhook_jobs)
        dead = await redis.xlen(keys.webhook_dead)
        out.write(
            f"webhooks: outbox {outbox}, queued {queued}, dead letters {dead}"
            f"{' (jindou webhooks replay)' if dead else ''}\n"
        )
    finally:
        await redis.aclose()
