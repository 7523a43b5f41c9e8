"""``jindou api``: serve the HTTP API until SIGTERM/SIGINT, then drain gracefully.

Shutdown order: readiness turns 503 and the drain hooks run (the gateway tells its
clients to reconnect elsewhere), the listeners close, in-flight requests finish,
services close; all within ``JINDOU_SHUTDOWN_GRACE``.
"""

from __future__ import annotations

import logging

import anyio
from aiohttp import web

from broker.http.app import create_app
from broker.http.context import READINESS
from broker.runtime import wait_for_shutdown_signal
from broker.settings import Settings, split_addr

log = logging.getLogger(__name__)

# Share of the grace the drain hooks may use; the rest is for in-flight requests.
DRAIN_HOOKS_SHARE = 0.25


async def serve_api(settings: Settings) -> None:
    app = create_app(settings)
    grace = settings.shutdown_grace
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=grace * (1 - DRAIN_HOOKS_SHARE),
    )
    await runner.setup()
    try:
        host, port = split_addr(settings.api_addr)
        await web.TCPSite(runner, host, port, backlog=1024).start()
        log.info("api listening on http://%s:%d", host, port)
        signum = await wait_for_shutdown_signal()
        log.info("received %s; draining (grace %.0f s)", signum.name, grace)
        with anyio.move_on_after(grace * DRAIN_HOOKS_SHARE):
            await app[READINESS].start_draining()
    finally:
        await runner.cleanup()
        log.info("api stopped")
