"""B5 baseline: a bare aiohttp WebSocket broadcast server.

``python -m bench.baseline_ws PORT`` answers the same JSON-RPC ``connect`` and
``send`` the load generator uses and pushes each sent message, encoded once, to
every other connection as a ``recv``: the floor of what Python + aiohttp cost for a
fan-out, without Redis, auth, storage or routing.
"""

from __future__ import annotations

import asyncio
import itertools
import sys

import msgspec
from aiohttp import WSMsgType, web

from bench.loop import run

_decode = msgspec.json.decode
_encode = msgspec.json.encode


def create_app() -> web.Application:
    clients: set[web.WebSocketResponse] = set()
    ids = itertools.count(1)

    async def handle(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        clients.add(ws)
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    break
                frame = _decode(msg.data)
                method = frame.get("method")
                if method == "connect":
                    await ws.send_str(
                        _encode(
                            {
                                "jsonrpc": "2.0",
                                "id": frame["id"],
                                "result": {"reasonCode": 1},
                            }
                        ).decode()
                    )
                elif method == "send":
                    params = frame["params"]
                    seq = next(ids)
                    await ws.send_str(
                        _encode(
                            {
                                "jsonrpc": "2.0",
                                "id": frame["id"],
                                "result": {
                                    "reasonCode": 1,
                                    "messageId": str(seq),
                                    "messageSeq": seq,
                                },
                            }
                        ).decode()
                    )
                    push = _encode(
                        {
                            "jsonrpc": "2.0",
                            "method": "recv",
                            "params": {
                                "header": {"redDot": True},
                                "messageId": str(seq),
                                "messageSeq": seq,
                                "channelId": params["channelId"],
                                "channelType": params["channelType"],
                                "fromUid": "sender",
                                "payload": params["payload"],
                            },
                        }
                    ).decode()
                    for other in list(clients):
                        if other is not ws and not other.closed:
                            await other.send_str(push)
        finally:
            clients.discard(ws)
        return ws

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/", handle)
    return app


async def serve(port: int) -> None:
    runner = web.AppRunner(create_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
    await asyncio.Event().wait()  # serve until SIGTERM


def main() -> None:
    run(serve(int(sys.argv[1])))


if __name__ == "__main__":
    main()
