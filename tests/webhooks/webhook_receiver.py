"""A real HTTP webhook receiver for tests: 127.0.0.1, free port, scripted failures.

Every request is recorded with whether its signature verified (the reference verifier
from workers.webhook_signature), so tests can check signing on 100% of deliveries.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from workers.webhook_signature import ATTEMPT_HEADER, ID_HEADER, verify


@dataclass(frozen=True)
class Hit:
    delivery_id: str
    event: str
    attempt: int
    body: bytes
    signature_ok: bool
    status: int
    path: str

    def json(self):
        return json.loads(self.body)


@dataclass
class Receiver:
    secret: str
    hits: list[Hit] = field(default_factory=list)
    seen: Counter = field(default_factory=Counter)
    # Fail (500) the first n attempts of a delivery: n = fail_times(delivery_id, body).
    fail_times: Callable[[str, bytes], int] = lambda _id, _body: 0
    # Fail every attempt of deliveries this returns True for.
    always_fail: Callable[[str, bytes], bool] = lambda _id, _body: False
    # Seconds to wait before answering.
    latency: Callable[[str], float] = lambda _id: 0.0
    outage: bool = False
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> Receiver:
        app = web.Application(client_max_size=64 << 20)
        app.router.add_post("/hook", self._hook)
        app.router.add_post("/redirect", self._redirect)
        app.router.add_post("/target", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _redirect(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self._record(request, body, 302)
        raise web.HTTPFound("/target")

    async def _hook(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        delivery_id = request.headers.get(ID_HEADER, "")
        self.seen[delivery_id] += 1
        if self.outage:
            status = 503
        elif self.always_fail(delivery_id, body) or self.seen[
            delivery_id
        ] <= self.fail_times(delivery_id, body):
            status = 500
        else:
            status = 200
        delay = self.latency(delivery_id)
        if delay:
            await asyncio.sleep(delay)
        self._record(request, body, status)
        return web.Response(status=status, text="ok" if status == 200 else "no")

    def _record(self, request: web.Request, body: bytes, status: int) -> None:
        self.hits.append(
            Hit(
                delivery_id=request.headers.get(ID_HEADER, ""),
                event=request.query.get("event", ""),
                attempt=int(request.headers.get(ATTEMPT_HEADER, "0")),
                body=body,
                signature_ok=verify(self.secret, request.headers, body),
                status=status,
                path=request.path,
            )
        )

    def delivered(self) -> list[Hit]:
        return [h for h in self.hits if 200 <= h.status < 300]

    def delivered_ids(self) -> set[str]:
        return {h.delivery_id for h in self.delivered()}
