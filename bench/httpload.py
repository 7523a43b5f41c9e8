"""Fallback HTTP load generator (when wrk is not installed): aiohttp + uvloop.

Run as a separate process: ``python -m bench.httpload URL BODIES_FILE
--connections N --duration S --header k:v``; prints one JSON line like the wrk
script's ``done`` (requests, duration_us, errors, non2xx, p50_us, p99_us, max_us).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from pathlib import Path

import aiohttp

from bench.latency import percentile
from bench.loop import run


async def load(
    url: str,
    bodies: list[bytes],
    connections: int,
    duration: float,
    headers: dict[str, str],
) -> dict[str, int]:
    latencies: list[float] = []
    errors = non2xx = 0
    stop_at = time.perf_counter() + duration
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def one_connection(start: int) -> None:
            nonlocal errors, non2xx
            for body in itertools.islice(itertools.cycle(bodies), start, None):
                if time.perf_counter() >= stop_at:
                    return
                began = time.perf_counter()
                try:
                    async with session.post(url, data=body) as resp:
                        await resp.read()
                        if not 200 <= resp.status < 300:
                            non2xx += 1
                except aiohttp.ClientError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - began)

        began = time.perf_counter()
        await asyncio.gather(*(one_connection(i * 7) for i in range(connections)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "requests": len(latencies) + errors,
        "duration_us": int(elapsed * 1e6),
        "errors": errors + non2xx,
        "non2xx": non2xx,
        "p50_us": int(percentile(latencies, 50) * 1e6),
        "p99_us": int(percentile(latencies, 99) * 1e6),
        "max_us": int((latencies[-1] if latencies else 0) * 1e6),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.httpload")
    parser.add_argument("url")
    parser.add_argument("bodies", type=Path, help="one request body per line")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--header", action="append", default=[])
    args = parser.parse_args()
    headers = dict(h.split(":", 1) for h in args.header)
    bodies = [line for line in args.bodies.read_bytes().splitlines() if line]
    result = run(
        load(
            args.url,
            bodies,
            args.connections,
            args.duration,
            {k.strip(): v.strip() for k, v in headers.items()},
        )
    )
    sys.stdout.write("JSON " + json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
