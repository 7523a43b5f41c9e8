"""Lua scripts, one file per atomic operation, with typed async wrappers.

redis-py's Script runs EVALSHA and reloads the script on NOSCRIPT.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from importlib.resources import files
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from broker.keys import ChannelKeys


def load(name: str) -> str:
    return (files("broker") / "lua" / f"{name}.lua").read_text()


class AppendStatus(Enum):
    STORED = 1
    DUPLICATE = 2
    BANNED = -19
    DISBANDED = -24


@dataclass(frozen=True, slots=True)
class AppendOutcome:
    status: AppendStatus
    seq: int = 0
    message_id: int = 0
    epoch: str = ""
    digest: str = ""


class Scripts:
    def __init__(self, redis: Redis) -> None:
        self._append: AsyncScript = redis.register_script(load("append"))

    def registered(self) -> list[AsyncScript]:
        """Every script of this object (for the readiness check)."""
        return [v for v in vars(self).values() if isinstance(v, AsyncScript)]

    async def append(
        self,
        *,
        channel: ChannelKeys,
        dispatch: str,
        dedupe: str,
        message: bytes,
        red_dot: bool,
        dedupe_ttl: int,
        message_id: int,
        client_msg_no: str,
        digest: str,
        new_epoch: str,
        now_ms: int,
        origin_conn: str = "",
        retention: int = 0,
        client: Any = None,
    ) -> Any:
        """Run the append script; with ``client`` (a pipeline) only queue it."""
        return await self._append(
            keys=[
                channel.meta,
                channel.log,
                channel.badge,
                channel.index,
                dispatch,
                dedupe,
            ],
            args=[
                message,
                int(red_dot),
                dedupe_ttl,
                message_id,
                client_msg_no,
                digest,
                new_epoch,
                now_ms,
                origin_conn,
                retention,
            ],
            client=client,
        )


def parse_append(reply: list[Any]) -> AppendOutcome:
    status = AppendStatus(int(reply[0]))
    if status is AppendStatus.STORED:
        return AppendOutcome(status, int(reply[1]), int(reply[2]), _text(reply[3]))
    if status is AppendStatus.DUPLICATE:
        return AppendOutcome(
            status, int(reply[1]), int(reply[2]), digest=_text(reply[3])
        )
    return AppendOutcome(status)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
