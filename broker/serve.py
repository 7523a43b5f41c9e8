"""``jindou api``: serve the HTTP API until SIGTERM/SIGINT."""

from __future__ import annotations

import logging

from aiohttp import web

from broker.http.app import create_app
from broker.runtime import wait_for_shutdown_signal
from broker.settings import Settings, split_addr

log = logging.getLogger(__name__)


async def serve_api(settings: Settings) -> None:
    runner = web.AppRunner(
        create_app(settings),
        access_log=None,
        handle_signals=False,
        shutdown_timeout=settings.shutdown_grace,
    )
    await runner.setup()
    try:
        host, port = split_addr(settings.api_addr)
        await web.TCPSite(runner, host, port, backlog=1024).start()
        log.info("api listening on http://%s:%d", host, port)
        signum = await wait_for_shutdown_signal()
        log.info("received %s; shutting down", signum.name)
    finally:
        await runner.cleanup()
