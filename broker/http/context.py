"""Typed application state shared by the HTTP routes."""

from __future__ import annotations

from aiohttp import web

from broker.services import Services

SERVICES = web.AppKey("services", Services)


def services(request: web.Request) -> Services:
    return request.app[SERVICES]
