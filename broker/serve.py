"""``jindou api``: the HTTP API and the WebSocket gateway, one Services, until
SIGTERM/SIGINT."""

from __future__ import annotations

import logging

import anyio
from aiohttp import web

from broker.gateway.server import Gateway, create_gateway_app
from broker.http.app import create_app
from broker.runtime import wait_for_shutdown_signal
from broker.services import close_services, open_services
from broker.settings import Settings, split_addr

log = logging.getLogger(__name__)


async def serve_api(settings: Settings) -> None:
    services = await open_services(settings)
    gateway = Gateway(services)
    runners: list[web.AppRunner] = []
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(services.lease.renew_forever)
            tg.start_soon(gateway.run)
            apps = (
                ("api", create_app(settings, services), settings.api_addr),
                ("gateway", create_gateway_app(gateway), settings.ws_addr),
            )
            for name, app, addr in apps:
                runner = web.AppRunner(
                    app,
                    access_log=None,
                    handle_signals=False,
                    shutdown_timeout=settings.shutdown_grace,
                )
                await runner.setup()
                runners.append(runner)
                host, port = split_addr(addr)
                await web.TCPSite(runner, host, port, backlog=1024).start()
                scheme = "ws" if name == "gateway" else "http"
                log.info("%s listening on %s://%s:%d", name, scheme, host, port)
            signum = await wait_for_shutdown_signal()
            log.info("received %s; shutting down", signum.name)
            gateway.close_all()
            for runner in reversed(runners):
                await runner.cleanup()
            runners.clear()
            tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            for runner in reversed(runners):
                await runner.cleanup()
            await close_services(services)
