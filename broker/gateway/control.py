"""Control frames between api nodes on ``jd:gw:control`` (every node listens).

A kick must reach a connection on whichever node holds it, and kicks are rare, so
they are broadcast rather than routed by the conns registry (which may lag).

Pub/sub drops what a node does not hear while it is unsubscribed, so every kick is
also logged in a capped stream (``jd:gw:kicks``). A connection remembers the log's
position when it registered; after a subscription gap the node replays the logged
kicks, each only to connections that registered before it was logged, which is
what it would have done had it heard them (replaying one it did hear kicks no one
twice: the connections it matched are gone).
"""

from __future__ import annotations

from typing import Any

import msgspec
from redis.asyncio import Redis

from broker.errors import Reason
from broker.keys import Keys

ALL_DEVICES = -1  # device_quit's device_flag=-1: app, web and pc


class Kick(msgspec.Struct, frozen=True, kw_only=True, tag="kick"):
    """Disconnect the uid's connections of ``device_flag`` (or all with -1).

    ``device_id`` non-empty: only connections with that device id. ``except_conn``
    is never kicked (the new connection that caused the kick).
    """

    uid: str
    device_flag: int = ALL_DEVICES
    device_id: str = ""
    except_conn: str = ""
    reason_code: int = Reason.CONNECT_KICK
    reason: str = "login in other device"


Control = Kick

_encode = msgspec.msgpack.Encoder().encode
decode_control = msgspec.msgpack.Decoder(Control).decode


# Kicks kept for replay: far more than a gap of seconds can miss.
KICK_LOG_MAXLEN = 10_000
# A position in the kick log: its stream id ``<ms>-<seq>`` as one comparable int.
LogPosition = int
LOG_START: LogPosition = 0
# After every logged kick: the position of a connection not registered yet, which
# no replayed kick reaches.
LOG_END: LogPosition = 1 << 96
_SEQ_BITS = 32


def log_position(entry_id: bytes | str) -> LogPosition:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return (int(ms) << _SEQ_BITS) | int(seq or 0)


def _entry_id(position: LogPosition) -> str:
    return f"{position >> _SEQ_BITS}-{position & ((1 << _SEQ_BITS) - 1)}"


async def publish_kick(redis: Redis, keys: Keys, kick: Kick) -> None:
    """Log the kick, then broadcast it (one round trip, in that order)."""
    data = _encode(kick)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.xadd(  # type: ignore[unused-awaitable]
            keys.gateway_kicks, {"k": data}, maxlen=KICK_LOG_MAXLEN, approximate=True
        )
        pipe.publish(keys.gateway_control, data)  # type: ignore[unused-awaitable]
        await pipe.execute()


async def logged_kicks(
    redis: Redis, keys: Keys, after: LogPosition
) -> list[tuple[LogPosition, Kick]]:
    """The logged kicks after ``after``, oldest first (undecodable ones skipped)."""
    entries: Any = await redis.xrange(keys.gateway_kicks, min=f"({_entry_id(after)}")
    kicks = []
    for entry_id, fields in entries:
        try:
            kicks.append((log_position(entry_id), decode_control(fields[b"k"])))
        except (KeyError, msgspec.DecodeError):
            continue
    return kicks


def kick_matches(
    kick: Kick, *, conn_id: str, uid: str, device_flag: int, device_id: str
) -> bool:
    if uid != kick.uid or conn_id == kick.except_conn:
        return False
    if kick.device_flag != ALL_DEVICES and device_flag != kick.device_flag:
        return False
    return not kick.device_id or device_id == kick.device_id
