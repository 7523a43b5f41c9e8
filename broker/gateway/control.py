"""Control frames between api nodes on ``jd:gw:control`` (every node listens).

A kick must reach a connection on whichever node holds it, and kicks are rare, so
they are broadcast rather than routed by the conns registry (which may lag).
"""

from __future__ import annotations

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


async def publish_kick(redis: Redis, keys: Keys, kick: Kick) -> None:
    await redis.publish(keys.gateway_control, _encode(kick))


def kick_matches(
    kick: Kick, *, conn_id: str, uid: str, device_flag: int, device_id: str
) -> bool:
    if uid != kick.uid or conn_id == kick.except_conn:
        return False
    if kick.device_flag != ALL_DEVICES and device_flag != kick.device_flag:
        return False
    return not kick.device_id or device_id == kick.device_id
