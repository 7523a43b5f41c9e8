"""Strict durability: acknowledge a write only once Redis has fsynced it (C2).

``JINDOU_DURABILITY=normal`` acknowledges after Redis applied the write (with
``appendfsync everysec`` a *process* crash loses nothing acknowledged, a host crash
up to about a second). ``strict`` also survives a host crash or power loss:

- Redis >= 7.2: every append is followed, on the same connection, by
  ``WAITAOF 1 0 <timeout>``; the write is acknowledged only if the local fsync count
  is >= 1, else the request fails with 503 (the client retries by client_msg_no).
- older Redis has no WAITAOF: strict mode starts only if the server runs
  ``appendonly yes`` with ``appendfsync always`` (Redis fsyncs before replying).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum
from typing import Any

from redis.asyncio import Redis

from broker.errors import StorageUnavailable
from broker.settings import ConfigError, Settings

log = logging.getLogger(__name__)

WAITAOF_SINCE = (7, 2)
WAITAOF_TIMEOUT_MS = 1_000


class FsyncMode(Enum):
    NONE = "none"  # normal durability: ack once applied
    WAITAOF = "waitaof"  # strict, Redis >= 7.2
    ALWAYS = "always"  # strict, older Redis with appendfsync always


class NotDurable(StorageUnavailable):
    def __init__(self) -> None:
        super().__init__(
            "the write was not confirmed on disk in time; it may or may not be "
            "stored: retry with the same client_msg_no"
        )


def parse_version(text: str) -> tuple[int, ...]:
    """``"7.2.4"`` → ``(7, 2, 4)``; non-numeric parts end the version."""
    parts: list[int] = []
    for part in text.split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)


def strict_mode(
    version: tuple[int, ...], appendonly: str, appendfsync: str
) -> FsyncMode:
    """How strict mode confirms writes on this server, or a one-line ConfigError."""
    if appendonly != "yes":
        raise ConfigError(
            "JINDOU_DURABILITY=strict needs Redis with appendonly yes "
            f"(this server has appendonly {appendonly or 'unknown'})"
        )
    if version >= WAITAOF_SINCE:
        return FsyncMode.WAITAOF
    if appendfsync == "always":
        return FsyncMode.ALWAYS
    shown = ".".join(map(str, version)) or "unknown"
    raise ConfigError(
        f"JINDOU_DURABILITY=strict needs Redis >= 7.2 (WAITAOF) or appendfsync "
        f"always; this Redis {shown} has appendfsync {appendfsync or 'unknown'}"
    )


def fsynced_locally(reply: Any) -> bool:
    """The ack decision on a ``WAITAOF 1 0 t`` reply ``[numlocal, numreplicas]``."""
    if isinstance(reply, BaseException) or not isinstance(reply, list | tuple):
        return False
    return len(reply) == 2 and int(reply[0]) >= 1


@dataclass
class FsyncGate:
    """Decides, per write, whether it may be acknowledged; counts its decisions."""

    mode: FsyncMode = FsyncMode.NONE
    timeout_ms: int = WAITAOF_TIMEOUT_MS
    confirmed: int = 0  # WAITAOF replies with numlocal >= 1 (one per acked write)
    refused: int = 0

    @property
    def waits(self) -> bool:
        return self.mode is FsyncMode.WAITAOF

    def check(self, reply: Any) -> None:
        """Raise NotDurable (503) unless the WAITAOF reply confirms the fsync."""
        if fsynced_locally(reply):
            self.confirmed += 1
            return
        self.refused += 1
        log.warning("WAITAOF did not confirm an fsync: %r", reply)
        raise NotDurable


async def open_gate(redis: Redis, settings: Settings) -> FsyncGate:
    """Check the server once at start; strict mode refuses a server it cannot trust."""
    if settings.durability != "strict":
        return FsyncGate()
    info = await redis.info("server")
    version = parse_version(str(info.get("redis_version", "")))
    try:
        config = await redis.config_get("append*")
    except Exception as exc:
        raise ConfigError(
            f"JINDOU_DURABILITY=strict must read the server's AOF config (CONFIG GET "
            f"failed: {exc})"
        ) from None
    values = {_text(k): _text(v) for k, v in config.items()}
    mode = strict_mode(
        version, values.get("appendonly", ""), values.get("appendfsync", "")
    )
    log.info("strict durability: writes confirmed by %s", mode.value)
    return FsyncGate(mode)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return "" if value is None else str(value)
