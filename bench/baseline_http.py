"""B1/B2 baseline: a trivial aiohttp endpoint decoding the same body with msgspec.

``python -m bench.baseline_http PORT``: ``POST /message/send`` checks the token
header, decodes the body into the same ``SendRequest`` type as the API, and answers
a ``SendResponse`` — everything a send costs in Python minus the broker's work.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import sys

import msgspec
from aiohttp import web

from bench.loop import run
from broker.protocol import SendRequest, SendResponse, SendResult

_decode = msgspec.json.Decoder(SendRequest).decode
_encode = msgspec.json.Encoder().encode


def create_app(token: str) -> web.Application:
    counter = 0

    async def send(request: web.Request) -> web.Response:
        nonlocal counter
        if not hmac.compare_digest(
            request.headers.get("token", "").encode(), token.encode()
        ):
            return web.json_response({"status": 401, "msg": "token"}, status=401)
        body = _decode(await request.read())
        counter += 1
        result = SendResult(
            message_id=counter,
            message_idstr=str(counter),
            client_msg_no=body.client_msg_no or "x",
            message_seq=counter,
            persisted=True,
        )
        return web.Response(
            body=_encode(SendResponse(data=result)), content_type="application/json"
        )

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post("/message/send", send)
    app.router.add_get("/health", health)
    return app


async def serve(port: int, token: str) -> None:
    runner = web.AppRunner(create_app(token), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    await asyncio.Event().wait()  # serve until SIGTERM


def main() -> None:
    run(serve(int(sys.argv[1]), os.environ["BENCH_TOKEN"]))


if __name__ == "__main__":
    main()
