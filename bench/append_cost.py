"""Where Redis' CPU in a persisted send goes: the append script, part by part.

``python -m bench.append_cost [--count N] [--runs R]`` appends ``N`` person
messages through the append script from pipelined redis-py clients (as
``bench.rawredis append``) into a fresh redis-server (AOF on, ``everysec``), once as
shipped and once per variant that leaves one part out, and prints Redis' CPU per
append of each (user+system from ``INFO cpu``, the median of ``R`` runs) and its
difference to the script as shipped. The variants are for measuring only: without
the lookup index a retry is not recognised, without the dispatch entry nobody is
told.

A variant names the exact lines of ``lua/append.lua`` it leaves out; if the script
no longer has one of them the tool stops rather than measure the wrong thing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.loop import run
from bench.rawredis import append_all, person_messages, redis_cpu_seconds
from bench.redis_binary import bench_redis_server
from broker.keys import Keys
from broker.redis_conn import connect
from broker.redis_server import RedisProcess
from broker.scripts import append_source
from broker.store import Store

# The dedupe window of a send with a client_msg_no (the settings' default): the
# script looks the client_msg_no up in the index before storing.
DEDUPE_TTL = 86_400
PREFIX = "jd:"
SHARDS = 128


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    removes: tuple[str, ...] = ()  # exact lines of lua/append.lua left out
    dedupe_ttl: int = DEDUPE_TTL
    appendonly: bool = True
    script: str | None = None  # a whole other script instead of lua/append.lua


AS_SHIPPED = Variant("as shipped")
# What the call itself costs Redis: reading and parsing the EVALSHA with its 24
# arguments, entering Lua and writing the reply ("stored", seq 1).
CALL_ONLY = Variant(
    "the call alone (a script that only replies)", script="return {1, 1, 'e'}"
)
VARIANTS = (
    AS_SHIPPED,
    CALL_ONLY,
    Variant("without AOF (appendonly no)", appendonly=False),
    Variant("without the dedupe lookup (server-made client_msg_no)", dedupe_ttl=0),
    Variant(
        "without the badge bit (SETBIT)",
        removes=("if red_dot == '1' then redis.call('SETBIT', badge, seq_s, 1) end",),
    ),
    Variant(
        "without the lookup index writes (2 HSET)",
        removes=(
            "redis.call('HSET', ix_bucket(index, k, id_hash), id_field, seq_s)",
            "redis.call('HSET', ix_bucket(index, k, cmn_hash), cmn_field, seq_s)",
        ),
    ),
    Variant(
        "without the dispatch entry (XADD)",
        removes=(
            "redis.call('XADD', dispatch, '*', 's', seq_s, 't', channel_type, "
            "'c', channel_id,",
            "  'f', from_uid, 'ts', now_ms, 'o', origin)",
        ),
    ),
)


class MissingLine(ValueError):
    """A variant's line is not in the script (the script changed)."""


def without_lines(source: str, removes: tuple[str, ...]) -> str:
    """``source`` with each of ``removes`` (whole lines) left out. Pure."""
    lines = source.split("\n")
    for line in removes:
        if line not in lines:
            raise MissingLine(f"append.lua has no line {line!r}")
        lines.remove(line)
    return "\n".join(lines)


def variant_source(variant: Variant) -> str:
    if variant.script is not None:
        return variant.script
    return without_lines(append_source(), variant.removes)


async def measure_once(
    variant: Variant, count: int, binary: str | None
) -> dict[str, float]:
    """One fresh redis-server, ``count`` appends: Redis CPU per append."""
    with tempfile.TemporaryDirectory() as tmp:
        redis_process = RedisProcess(
            Path(tmp), appendonly=variant.appendonly, binary=binary
        ).start()
        redis = connect(redis_process.url, timeout=60)
        try:
            keys = Keys(prefix=PREFIX, shards=SHARDS)
            store = Store(redis, keys)
            store.scripts.append_script = redis.register_script(variant_source(variant))
            before = await redis_cpu_seconds(redis)
            stored = await append_all(
                redis,
                keys,
                person_messages(count),
                batch=64,
                concurrency=2,
                dedupe_ttl=variant.dedupe_ttl,
                store=store,
            )
            cpu = await redis_cpu_seconds(redis) - before
            dispatched = sum(
                [await redis.xlen(keys.dispatch(s)) for s in range(keys.shards)]
            )
        finally:
            await redis.aclose()
            redis_process.stop()
    return {
        "stored": stored,
        "dispatched": dispatched,
        "redis_cpu_us_per_append": cpu / max(stored, 1) * 1e6,
    }


async def measure(count: int, runs: int) -> dict[str, Any]:
    binary = bench_redis_server()
    results: dict[str, Any] = {}
    # Interleaved (variant after variant, run after run) so that a slow minute of a
    # shared machine spreads over all of them rather than skewing one.
    samples: dict[str, list[dict[str, float]]] = {v.name: [] for v in VARIANTS}
    for _ in range(runs):
        for variant in VARIANTS:
            samples[variant.name].append(await measure_once(variant, count, binary))
    shipped = statistics.median(
        s["redis_cpu_us_per_append"] for s in samples[AS_SHIPPED.name]
    )
    for name, values in samples.items():
        per = [s["redis_cpu_us_per_append"] for s in values]
        median = statistics.median(per)
        results[name] = {
            "redis_cpu_us_per_append": round(median, 2),
            "range": [round(min(per), 2), round(max(per), 2)],
            "saves_us": round(shipped - median, 2),
            "stored": [int(s["stored"]) for s in values],
            "dispatched": [int(s["dispatched"]) for s in values],
        }
    return {"count": count, "runs": runs, "variants": results}


def table(result: dict[str, Any]) -> str:
    rows = [
        "| variant | Redis CPU per append (µs) | range | saved vs as shipped |",
        "|---|---|---|---|",
    ]
    for name, v in result["variants"].items():
        low, high = v["range"]
        saved = "-" if name == AS_SHIPPED.name else f"{v['saves_us']:.1f}"
        rows.append(
            f"| {name} | {v['redis_cpu_us_per_append']:.1f} "
            f"| {low:.1f}-{high:.1f} | {saved} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=60_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    result = run(measure(args.count, args.runs))
    sys.stdout.write(table(result) + "\n")
    sys.stdout.write("JSON " + json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
