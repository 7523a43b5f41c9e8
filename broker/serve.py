"""``jindou api``: the HTTP API and the WebSocket gateway over one Services, until
SIGTERM/SIGINT, then drain gracefully.

Shutdown order: readiness turns 503 and the drain hooks run (the gateway closes its
sockets with 1001 so clients reconnect elsewhere), the listeners close, in-flight
requests finish, services close; all within ``JINDOU_SHUTDOWN_GRACE``.
"""

from __future__ import annotations

import logging

import anyio
from aiohttp import web

from broker.gateway.server import Gateway, create_gateway_server
from broker.gc_tuning import tune_for_serving
from broker.http.app import create_app
from broker.http.context import READINESS
from broker.runtime import wait_for_shutdown_signal
from broker.services import close_services, open_services
from broker.settings import Settings, split_addr

log = logging.getLogger(__name__)

# Share of the grace the drain hooks may use; the rest is for in-flight requests.
DRAIN_HOOKS_SHARE = 0.25


async def serve_api(settings: Settings) -> None:
    services = await open_services(settings)
    gateway = Gateway(services)
    grace = settings.shutdown_grace
    api_app = create_app(settings, services)
    api_app[READINESS].add("pubsub", gateway.subscription_check)
    api_app[READINESS].on_drain(gateway.drain)
    runners: list[web.BaseRunner] = []
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(services.lease.renew_forever)
            tg.start_soon(gateway.run)
            shutdown_timeout = grace * (1 - DRAIN_HOOKS_SHARE)
            apps: tuple[tuple[str, web.BaseRunner, str, str], ...] = (
                (
                    "api",
                    web.AppRunner(
                        api_app,
                        access_log=None,
                        handle_signals=False,
                        shutdown_timeout=shutdown_timeout,
                    ),
                    settings.api_addr,
                    "http",
                ),
                (
                    "gateway",
                    web.ServerRunner(
                        create_gateway_server(gateway),
                        handle_signals=False,
                        shutdown_timeout=shutdown_timeout,
                    ),
                    settings.ws_addr,
                    "ws",
                ),
            )
            for name, runner, addr, scheme in apps:
                await runner.setup()
                runners.append(runner)
                host, port = split_addr(addr)
                await web.TCPSite(runner, host, port, backlog=1024).start()
                log.info("%s listening on %s://%s:%d", name, scheme, host, port)
            tune_for_serving()
            signum = await wait_for_shutdown_signal()
            log.info("received %s; draining (grace %.0f s)", signum.name, grace)
            with anyio.move_on_after(grace * DRAIN_HOOKS_SHARE):
                await api_app[READINESS].start_draining()
            for runner in reversed(runners):
                await runner.cleanup()
            runners.clear()
            tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            for runner in reversed(runners):
                await runner.cleanup()
            await close_services(services)
        log.info("api stopped")
