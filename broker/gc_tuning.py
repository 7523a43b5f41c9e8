"""Garbage collector settings of the long-running processes (api, worker).

A full collection walks every tracked object; in a process that has imported
aiohttp, redis-py, msgspec and anyio that is a few hundred thousand objects and
took 20-50 ms on the benchmark machine (measured with ``gc.callbacks`` during B5),
a stall every delivery in flight waits for. Objects that exist once the process
has started (modules, classes, functions) are never garbage: ``gc.freeze`` moves
them out of the collector's way. A larger young generation makes collections
rarer; each one stays small.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000  # default 700
OLDER_THRESHOLD = 20  # default 10 (per older generation)


def tune_gc() -> None:
    """Call once, after the imports and before serving."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, OLDER_THRESHOLD, OLDER_THRESHOLD)
