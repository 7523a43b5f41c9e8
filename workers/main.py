"""``jindou worker``: connect, register, work until SIGTERM/SIGINT."""

from __future__ import annotations

import logging

from broker.ops import worker_ops
from broker.redis_conn import check_deployment, connect, keys_for
from broker.runtime import wait_for_shutdown_signal
from broker.settings import Settings

log = logging.getLogger(__name__)


async def run_worker(settings: Settings) -> None:
    redis = connect(settings.redis_url)
    try:
        keys = keys_for(settings)
        await check_deployment(redis, keys)
        log.info("worker connected to redis; %d shards", keys.shards)
        async with worker_ops(settings.worker_metrics_addr, redis) as readiness:
            signum = await wait_for_shutdown_signal()
            log.info("received %s; worker stopping", signum.name)
            await readiness.start_draining()
    finally:
        await redis.aclose()
