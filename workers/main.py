"""``jindou worker``: connect, register, fan out until SIGTERM/SIGINT."""

from __future__ import annotations

import logging

import anyio

from broker.health import lease_check
from broker.ops import worker_ops
from broker.redis_conn import check_deployment, connect, keys_for
from broker.runtime import wait_for_shutdown_signal
from broker.settings import Settings
from workers.coordinator import Coordinator
from workers.webhooks import run_webhook_sender

log = logging.getLogger(__name__)


async def run_worker(settings: Settings) -> None:
    # Blocking reads wait up to 5 s; the socket timeout must be longer. (The dispatch
    # loop reads every owned shard on its own hot-path client: workers/rawreplies.py.)
    redis = connect(
        settings.redis_url, timeout=30.0, max_connections=settings.shards + 64
    )
    try:
        keys = keys_for(settings)
        await check_deployment(redis, keys)
        coordinator = Coordinator(redis, keys, settings)
        log.info(
            "worker %s connected to redis; %d shards",
            coordinator.worker_id,
            keys.shards,
        )
        stop = anyio.Event()
        async with worker_ops(settings.worker_metrics_addr, redis) as readiness:
            readiness.add(
                "leases",
                lease_check(lambda: len(coordinator.owned), coordinator.unowned_shards),
            )

            async def stop_on_signal() -> None:
                signum = await wait_for_shutdown_signal()
                log.info("received %s; worker stopping", signum.name)
                await readiness.start_draining()
                stop.set()

            async with anyio.create_task_group() as tg:
                tg.start_soon(stop_on_signal)
                tg.start_soon(run_webhook_sender, settings, redis)
                await coordinator.run(stop)
                tg.cancel_scope.cancel()
        log.info("worker %s stopped", coordinator.worker_id)
    finally:
        await redis.aclose()
