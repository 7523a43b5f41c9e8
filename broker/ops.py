"""Operator endpoints shared by the api and the worker's ops server.

The api serves ``/metrics`` and ``/readyz`` on its own port (broker/http/routes_ops.py);
a worker serves ``/metrics``, ``/health`` and ``/readyz`` on
``JINDOU_WORKER_METRICS_ADDR`` (empty: no ops server) with :func:`worker_ops`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec
from aiohttp import web
from redis.asyncio import Redis

from broker.health import Readiness, ready_response, redis_ping_check
from broker.metrics import CONTENT_TYPE, render
from broker.settings import split_addr

log = logging.getLogger(__name__)

_encode = msgspec.json.Encoder().encode


def metrics_response() -> web.Response:
    return web.Response(body=render(), headers={"Content-Type": CONTENT_TYPE})


async def readyz_response(readiness: Readiness) -> web.Response:
    answer = ready_response(await readiness.report())
    return web.Response(
        body=_encode(answer), status=answer.status, content_type="application/json"
    )


def ops_app(readiness: Readiness) -> web.Application:
    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        return await readyz_response(readiness)

    async def metrics(request: web.Request) -> web.Response:
        return metrics_response()

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


class OpsServer:
    """A small HTTP server for probes and scrapes, on its own port."""

    def __init__(self, runner: web.AppRunner) -> None:
        self._runner = runner

    @property
    def port(self) -> int:
        return int(self._runner.addresses[0][1])

    async def close(self) -> None:
        await self._runner.cleanup()


async def start_ops_server(addr: str, readiness: Readiness) -> OpsServer:
    host, port = split_addr(addr)
    runner = web.AppRunner(ops_app(readiness), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    server = OpsServer(runner)
    log.info("ops server on http://%s:%d (/metrics /health /readyz)", host, server.port)
    return server


@asynccontextmanager
async def worker_ops(addr: str, redis: Redis) -> AsyncIterator[Readiness]:
    """A worker's readiness (Redis PING registered; add lease checks to it) and,
    when ``addr`` is set, its ops server for the duration of the block."""
    readiness = Readiness()
    readiness.add("redis", redis_ping_check(redis))
    if not addr:
        yield readiness
        return
    server = await start_ops_server(addr, readiness)
    try:
        yield readiness
    finally:
        await server.close()
