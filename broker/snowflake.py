"""64-bit snowflake message ids: 41 bits of ms since 2010-11-04, 10 bits node,
12 bits sequence (the layout of bwmarrin/snowflake that WuKongIM uses).

The generator is pure; the node number is leased from Redis (:mod:`broker.node`)
so that two processes never mint the same id.
"""

from __future__ import annotations

import time
from collections.abc import Callable

EPOCH_MS = 1288834974657
NODE_BITS = 10
SEQ_BITS = 12
MAX_NODE = (1 << NODE_BITS) - 1
_SEQ_MASK = (1 << SEQ_BITS) - 1


class Snowflake:
    def __init__(self, node: int, clock: Callable[[], float] = time.time) -> None:
        if not 0 <= node <= MAX_NODE:
            raise ValueError(f"snowflake node must be in 0..{MAX_NODE}")
        self.node = node
        self._clock = clock
        self._last_ms = 0
        self._seq = 0

    def next_id(self) -> int:
        now = int(self._clock() * 1000)
        # Never step back: a clock moved backwards keeps using the last millisecond,
        # and a full millisecond borrows the next one.
        if now <= self._last_ms:
            self._seq = (self._seq + 1) & _SEQ_MASK
            if self._seq == 0:
                self._last_ms += 1
        else:
            self._last_ms = now
            self._seq = 0
        return (
            ((self._last_ms - EPOCH_MS) << (NODE_BITS + SEQ_BITS))
            | (self.node << SEQ_BITS)
            | self._seq
        )


def id_time_ms(message_id: int) -> int:
    return (message_id >> (NODE_BITS + SEQ_BITS)) + EPOCH_MS
