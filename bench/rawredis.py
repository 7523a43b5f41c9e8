"""Raw Redis ceilings and fixtures, without the api or the workers.

- ``append``: the append script called from pipelined redis-py clients (the B3
  baseline, and how B6/B7 pre-fill their data).
- ``drain``: XREADGROUP + XACK over every dispatch shard (the B6 baseline).

``python -m bench.rawredis append|drain ...`` runs one as a separate process and
prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from bench.loop import run
from broker.channels import ChannelType, person_channel_id
from broker.keys import Keys
from broker.messages import payload_digest
from broker.protocol import StoredMessage
from broker.redis_conn import connect
from broker.store import Store

PAYLOAD = b'{"type":1,"content":"' + b"x" * 80 + b'"}'
PAIRS = 1000


def person_messages(
    count: int, payload: bytes = PAYLOAD, pairs: int = PAIRS, first_id: int = 1
) -> Iterator[StoredMessage]:
    """``count`` person messages spread over ``pairs`` conversations."""
    now = int(time.time() * 1000)
    for n in range(count):
        pair = n % pairs
        yield StoredMessage(
            message_id=first_id + n,
            client_msg_no=uuid.uuid4().hex,
            from_uid=f"u{pair}",
            channel_id=person_channel_id(f"u{pair}", f"v{pair}"),
            channel_type=int(ChannelType.PERSON),
            timestamp_ms=now,
            payload=payload,
            red_dot=1,
        )


def channel_messages(
    count: int, channel_id: str, channel_type: int, payload: bytes = PAYLOAD
) -> Iterator[StoredMessage]:
    now = int(time.time() * 1000)
    for n in range(count):
        yield StoredMessage(
            message_id=n + 1,
            client_msg_no=uuid.uuid4().hex,
            from_uid=f"u{n % 50}",
            channel_id=channel_id,
            channel_type=channel_type,
            timestamp_ms=now,
            payload=payload,
            red_dot=1,
        )


async def append_all(
    redis: Redis,
    keys: Keys,
    messages: Iterator[StoredMessage],
    *,
    batch: int = 100,
    concurrency: int = 4,
    dedupe_ttl: int = 86_400,
    store: Store | None = None,
) -> int:
    """Append every message through the append script, ``concurrency``
    pipelines of ``batch`` scripts in flight. Returns how many were stored."""
    store = store or Store(redis, keys)
    stored = 0
    lock = asyncio.Lock()

    async def pipeline_loop() -> None:
        nonlocal stored
        while True:
            async with lock:  # take the next batch off the shared iterator
                chunk = list(itertools.islice(messages, batch))
            if not chunk:
                return
            outcomes = await store.append_many(
                chunk,
                dedupe_ttl=dedupe_ttl,
                digests=[payload_digest(m.payload) for m in chunk],
                new_epoch=uuid.uuid4().hex[:16],
            )
            stored += sum(1 for o in outcomes if o.seq > 0)

    await asyncio.gather(*(pipeline_loop() for _ in range(concurrency)))
    return stored


async def drain(redis: Redis, keys: Keys, group: str, *, count: int = 500) -> int:
    """Read every dispatch shard's entries with XREADGROUP and XACK them."""
    streams = [keys.dispatch(s) for s in range(keys.shards)]
    for stream in streams:
        try:
            await redis.xgroup_create(stream, group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
    done = 0
    while True:
        reply: Any = await redis.xreadgroup(
            group, "raw", dict.fromkeys(streams, ">"), count=count
        )
        if not reply:
            return done
        async with redis.pipeline(transaction=False) as pipe:
            for name, entries in reply:
                if entries:
                    pipe.xack(name, group, *[e[0] for e in entries])  # type: ignore[unused-awaitable]
                    done += len(entries)
            await pipe.execute()


async def redis_cpu_seconds(redis: Redis) -> float:
    """User+system CPU the redis-server has used so far (INFO cpu)."""
    info = await redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def _main(args: argparse.Namespace) -> dict[str, float]:
    redis = connect(args.url, timeout=60)
    keys = Keys(prefix=args.prefix, shards=args.shards)
    try:
        cpu_before = await redis_cpu_seconds(redis)
        began = time.perf_counter()
        if args.mode == "append":
            done = await append_all(
                redis,
                keys,
                person_messages(args.count),
                batch=args.batch,
                concurrency=args.concurrency,
                dedupe_ttl=args.dedupe_ttl,
            )
        else:
            done = await drain(redis, keys, args.group)
        seconds = time.perf_counter() - began
        cpu = await redis_cpu_seconds(redis) - cpu_before
        return {
            "messages": done,
            "seconds": seconds,
            # what one message costs the redis-server (user+system CPU)
            "redis_cpu_us_per_message": cpu / max(done, 1) * 1e6,
        }
    finally:
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.rawredis")
    parser.add_argument("mode", choices=["append", "drain"])
    parser.add_argument("url")
    parser.add_argument("--prefix", default="jd:")
    parser.add_argument("--shards", type=int, default=128)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--group", default="raw")
    parser.add_argument(
        "--dedupe-ttl",
        type=int,
        default=86_400,
        help="append: the dedupe window; 0 = as for a server-made client_msg_no",
    )
    result = run(_main(parser.parse_args()))
    sys.stdout.write("JSON " + json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
