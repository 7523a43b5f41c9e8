"""The api with its append batches answered in the process instead of by Redis.

``python -m bench.api_without_redis`` runs ``jindou api`` with one change:
``Store._run_appends`` answers each batch with "stored" one loop tick later, without
sending it to Redis. Everything else a send does in the api still runs: auth,
decoding, checks, building and packing the message, the batcher, parsing the reply,
metrics and the response. Scenarios B1X and B2X drive it like B1 and B2, so their
rate is the ceiling of the api's HTTP send path on this machine with Redis' work
(its CPU and the round trip) taken away (BENCHMARKS.md, "Misses").

For measuring only: nothing is stored.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from broker import cli
from broker.store import PendingAppend, Store

_seqs = itertools.count(1)


async def _answer_in_process(self: Store, batch: list[PendingAppend]) -> list[Any]:
    await asyncio.sleep(0)  # one loop tick, as a reply would take at the least
    # The append script's "stored" reply: {1, seq, epoch} (lua/append.lua).
    return [[1, next(_seqs), b"bench"] for _ in batch]


def answer_appends_in_process() -> None:
    """From now on, every Store of this process answers its appends itself."""
    Store._run_appends = _answer_in_process  # type: ignore[method-assign]


def main() -> int:
    answer_appends_in_process()
    return cli.main(["api"])


if __name__ == "__main__":
    raise SystemExit(main())
