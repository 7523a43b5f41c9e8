"""Users: device tokens and system uids (reference §7).

Tokens are stored only as hashes (broker/users.py) and never logged.
"""

from __future__ import annotations

from redis.asyncio import Redis

from broker.admin_protocol import UidsRequest, UserTokenRequest
from broker.channel_admin import checked_uids
from broker.channels import SYSTEM_UID, InvalidId, check_id
from broker.errors import Reason, bad_request
from broker.keys import Keys
from broker.users import store_token, user_banned

MAX_TOKEN_BYTES = 1024
MAX_DEVICE_FLAG = 255


class UserAdmin:
    def __init__(self, redis: Redis, keys: Keys, max_list: int) -> None:
        self.redis = redis
        self.keys = keys
        self.max_list = max_list

    async def register_token(self, req: UserTokenRequest) -> int:
        """Store the token of (uid, device_flag); the v2 status (200, or 19 when the
        user is banned, in which case nothing is stored)."""
        try:
            uid = check_id(req.uid, "uid")
        except InvalidId as exc:
            raise bad_request(str(exc)) from None
        if uid == SYSTEM_UID:
            raise bad_request("the system uid cannot have a token")
        if not req.token:
            raise bad_request("token must not be empty")
        if len(req.token.encode()) > MAX_TOKEN_BYTES:
            raise bad_request(f"token is longer than {MAX_TOKEN_BYTES} bytes")
        if not 0 <= req.device_flag <= MAX_DEVICE_FLAG:
            raise bad_request(f"device_flag must be between 0 and {MAX_DEVICE_FLAG}")
        if req.device_level not in (0, 1):
            raise bad_request("device_level must be 0 (slave) or 1 (master)")
        if await user_banned(self.redis, self.keys, uid):
            return Reason.BAN
        await store_token(
            self.redis, self.keys, uid, req.device_flag, req.token, req.device_level
        )
        return 200

    def _uids(self, req: UidsRequest) -> list[str]:
        uids = checked_uids(req.uids, "uids", self.max_list)
        if not uids:
            raise bad_request("uids must not be empty")
        return uids

    async def add_system_uids(self, req: UidsRequest) -> None:
        await self.redis.sadd(self.keys.system_uids, *self._uids(req))

    async def remove_system_uids(self, req: UidsRequest) -> None:
        await self.redis.srem(self.keys.system_uids, *self._uids(req))

    async def system_uids(self) -> list[str]:
        members = await self.redis.smembers(self.keys.system_uids)
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)
