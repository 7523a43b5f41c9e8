"""Typed application state shared by the HTTP routes."""

from __future__ import annotations

from aiohttp import web

from broker.health import Readiness
from broker.services import Services
from broker.user_limits import UserSendLimits

SERVICES = web.AppKey("services", Services)


def services(request: web.Request) -> Services:
    return request.app[SERVICES]


# Operability (broker/http/routes_ops.py): readiness checks and draining flag
# (other parts add checks and drain hooks: app[READINESS].add / .on_drain), and the
# generated OpenAPI document and docs page.
READINESS = web.AppKey("readiness", Readiness)
OPENAPI = web.AppKey("openapi", bytes)
DOCS_HTML = web.AppKey("docs_html", str)

# Send rate of users calling with their own credentials (broker/user_limits.py).
USER_SEND_LIMITS = web.AppKey("user_send_limits", UserSendLimits)
