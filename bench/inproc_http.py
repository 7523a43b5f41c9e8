"""CPU per HTTP send in one process, without sockets: Jindou's app against the
baseline endpoint, through the same aiohttp request handler.

``python -m bench.inproc_http [--requests N] [--connections C]`` feeds raw HTTP
requests into aiohttp's protocol objects over in-memory transports, closed loop
(each connection sends its next request when its answer is written), and reports
CPU microseconds per request of (a) the msgspec endpoint of B1's baseline and (b)
Jindou's ``/message/send`` with its appends answered in the process
(bench.api_without_redis). No system calls, no other process and no scheduler in
the figures: what is left is Python work, steady to ~1 µs between runs, so a change
to the send path can be judged in seconds (B1's own CPU figures move by ~5 µs
between runs). Needs a redis-server for start-up only.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from bench import api_without_redis
from bench.baseline_http import create_app as baseline_app
from bench.loop import run
from bench.redis_binary import bench_redis_server
from bench.scenarios_http import write_send_bodies
from broker.gc_tuning import tune_for_serving
from broker.http.app import create_app
from broker.redis_server import RedisProcess
from broker.services import close_services, open_services
from broker.settings import Settings

TOKEN = "inproc-manager-token-0123456789abcdef"


class MemoryTransport(asyncio.Transport):
    """A socket that is never written to: answers are counted, then dropped."""

    def __init__(self, on_answer: Callable[[bool], None]) -> None:
        super().__init__()
        self._on_answer = on_answer
        self._closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        head = bytes(data[:12])
        if head.startswith(b"HTTP/1.1 "):
            self._on_answer(head == b"HTTP/1.1 200")

    def writelines(self, list_of_data: Any) -> None:
        parts = list(list_of_data)
        if parts:
            self.write(b"".join(parts))

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        self._closing = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return ("127.0.0.1", 40000)
        if name == "sockname":
            return ("127.0.0.1", 8080)
        return default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


def raw_requests(bodies: list[bytes]) -> list[bytes]:
    return [
        b"POST /message/send HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"token: %b\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%b" % (TOKEN.encode(), len(body), body)
        for body in bodies
    ]


async def drive(
    app: web.Application, requests: list[bytes], total: int, connections: int
) -> float:
    """CPU seconds per answered request, ``connections`` closed-loop clients."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    server = runner.server
    assert server is not None
    done = asyncio.get_running_loop().create_future()
    sent = 0
    answered = 0
    failed = 0
    protocols: list[Any] = []

    def send_next(i: int) -> None:
        nonlocal sent
        if sent < total:
            protocols[i].data_received(requests[sent % len(requests)])
            sent += 1

    def answer(i: int, ok: bool) -> None:
        nonlocal answered, failed
        answered += 1
        failed += not ok
        if answered == total and not done.done():
            done.set_result(None)
        else:
            # The next request of this client, after the loop has moved on (as a
            # socket read would arrive).
            asyncio.get_running_loop().call_soon(send_next, i)

    for i in range(connections):
        protocol = server()
        protocol.connection_made(MemoryTransport(functools.partial(answer, i)))
        protocols.append(protocol)
    started = time.process_time()
    for i in range(connections):
        send_next(i)
    await done
    used = time.process_time() - started
    for protocol in protocols:
        protocol.connection_lost(None)
    await runner.cleanup()
    if failed:
        raise RuntimeError(f"{failed} of {total} requests were not answered 200")
    return used / total


async def measure(total: int, connections: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisProcess(Path(tmp), appendonly=False, binary=bench_redis_server())
        redis.start()
        try:
            settings = Settings(
                redis_url=redis.url, manager_token=TOKEN, shards=16, uvloop=True
            )
            bodies_file = write_send_bodies(Path(tmp) / "bodies.txt")
            bodies = [
                line.encode() for line in bodies_file.read_text().splitlines() if line
            ]
            requests = raw_requests(bodies)
            api_without_redis.answer_appends_in_process()
            services = await open_services(settings)
            try:
                apps: dict[str, Callable[[], web.Application]] = {
                    "baseline": functools.partial(baseline_app, TOKEN),
                    "jindou": functools.partial(create_app, settings, services),
                }
                tune_for_serving()
                results: dict[str, list[float]] = {name: [] for name in apps}
                for make in apps.values():  # warm-up: imports, caches
                    await drive(make(), requests, total // 5, connections)
                for _ in range(rounds):
                    for name, make in apps.items():
                        per = await drive(make(), requests, total, connections)
                        results[name].append(per * 1e6)
            finally:
                await close_services(services)
        finally:
            redis.stop()
    best = {name: min(values) for name, values in results.items()}
    return {
        "us_per_request_best": {k: round(v, 2) for k, v in best.items()},
        "us_per_request_runs": {
            k: [round(x, 2) for x in v] for k, v in results.items()
        },
        "jindou_minus_baseline_us": round(best["jindou"] - best["baseline"], 2),
        "requests": total,
        "connections": connections,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    result = run(measure(args.requests, args.connections, args.rounds))
    print("JSON " + json.dumps(result))


if __name__ == "__main__":
    main()
