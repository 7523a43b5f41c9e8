"""Kicks a node missed while it was unsubscribed (R7).

Kicks travel over pub/sub (``control.py``), so a node that lost its subscription
for a moment misses the ones published meanwhile, and a device that was logged
out stays connected. After such a gap the node reads the token record of every
local connection again and kicks those whose record is gone (``device_quit``) or
was replaced at master level (``/user/token`` with ``device_level=1``): what the
missed kicks would have done. A kick made by another login (same device id, or a
master login of the same device flag) leaves the record as it was and is still
missed; docs/reliability.md says so.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from redis.asyncio import Redis

from broker.errors import Reason
from broker.gateway import frames, wire
from broker.keys import Keys

log = logging.getLogger(__name__)

MASTER_LEVEL = b"1"
# Token records read per round trip.
BATCH = 500


class Checked(Protocol):
    uid: str
    device_flag: int
    credential: int

    def kick(self, notice: bytes) -> None: ...


def credential_of(record: bytes) -> int:
    """What a connection keeps of the token record it authenticated with."""
    return hash(record)


def missed_kick(credential: int, record: bytes | None) -> str | None:
    """Why a connection that authenticated with ``credential`` should have been
    kicked, given the token record stored now; None if it should not. Pure."""
    if record is None:
        return "device quit"
    if credential_of(record) == credential:
        return None
    if record.partition(b":")[0] == MASTER_LEVEL:
        return "login in other device"
    return None  # replaced at slave level: that kicks no one


def notice(reason: str) -> bytes:
    return wire.text_frame(
        frames.notification(
            "disconnect",
            frames.DisconnectNotice(reasonCode=Reason.CONNECT_KICK, reason=reason),
        )
    )


async def recheck(redis: Redis, keys: Keys, conns: Sequence[Checked]) -> int:
    """Kick the connections a missed kick was meant for; returns how many."""
    kicked = 0
    for start in range(0, len(conns), BATCH):
        chunk = conns[start : start + BATCH]
        async with redis.pipeline(transaction=False) as pipe:
            for conn in chunk:
                pipe.hget(keys.tokens(conn.uid), str(conn.device_flag))  # type: ignore[unused-awaitable]
            records = await pipe.execute()
        for conn, record in zip(chunk, records, strict=True):
            reason = missed_kick(conn.credential, record)
            if reason is not None:
                conn.kick(notice(reason))
                kicked += 1
    if kicked:
        log.info("kicked %d connections whose kick was missed", kicked)
    return kicked
