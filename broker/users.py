"""Device tokens: stored only as SHA-256 hashes, per (uid, device_flag)."""

from __future__ import annotations

import hashlib
import hmac

from redis.asyncio import Redis

from broker.channels import ChannelType
from broker.errors import Reason, forbidden
from broker.keys import Keys


def user_flags_key(keys: Keys, uid: str) -> str:
    """Where a user's ban lives: the flags of his own person channel (reference §7)."""
    return keys.channel(ChannelType.PERSON, uid).meta


def is_banned(ban_field: bytes | str | None) -> bool:
    """The ``ban`` field of :func:`user_flags_key`, as HGET returns it."""
    return ban_field in (b"1", "1")


async def user_banned(redis: Redis, keys: Keys, uid: str) -> bool:
    return is_banned(await redis.hget(user_flags_key(keys, uid), "ban"))


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_record(token: str, device_level: int) -> str:
    """The value kept in ``jd:{u:<uid>}:tok`` for one device flag."""
    return f"{device_level}:{hash_token(token)}"


async def store_token(
    redis: Redis, keys: Keys, uid: str, device_flag: int, token: str, device_level: int
) -> None:
    await redis.hset(
        keys.tokens(uid), str(device_flag), token_record(token, device_level)
    )


async def check_token(
    redis: Redis, keys: Keys, uid: str, device_flag: int, token: str
) -> int | None:
    """The device level stored with ``token`` if it is the one stored for
    (uid, device_flag) (the record is ``level:hash``), else None."""
    record = await redis.hget(keys.tokens(uid), str(device_flag))
    if not record or not token:
        return None
    raw = record.decode() if isinstance(record, bytes) else str(record)
    level, _, stored = raw.partition(":")
    if not hmac.compare_digest(stored, hash_token(token)):
        return None
    return int(level)


class UserTokens:
    """Token checks for the HTTP API's user credentials (headers uid + token)."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def token_valid(self, uid: str, token: str) -> bool:
        """True if ``token`` is the token of any of the uid's devices. A banned
        user's valid token is refused with 403 (reason 19), as his connects are
        (the ban is the ``ban`` flag of his own person channel)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hvals(self.keys.tokens(uid))  # type: ignore[unused-awaitable]
            pipe.hget(user_flags_key(self.keys, uid), "ban")  # type: ignore[unused-awaitable]
            records, ban = await pipe.execute()
        wanted = hash_token(token)
        for record in records:
            text = record.decode() if isinstance(record, bytes) else str(record)
            if hmac.compare_digest(text.partition(":")[2], wanted):
                if is_banned(ban):
                    raise forbidden("this user is banned", Reason.BAN)
                return True
        return False
