"""Helpers for the channel, user and permission tests."""

from __future__ import annotations

import base64

# Every token the channel tests register or try; checked against all log output.
TOKENS_USED: list[str] = []


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class UserClient:
    """Calls the API with a user's own credentials (headers uid + token)."""

    def __init__(self, api, uid: str, token: str) -> None:
        self.api = api
        self.uid = uid
        self.token = token

    @property
    def headers(self) -> dict[str, str]:
        return {"uid": self.uid, "token": self.token}

    async def post(self, path: str, body: object):
        resp = await self.api.client.post(path, json=body, headers=self.headers)
        return resp.status, await resp.json()

    async def get(self, path: str, **params: object):
        resp = await self.api.client.get(
            path, params={k: str(v) for k, v in params.items()}, headers=self.headers
        )
        return resp.status, await resp.json()

    async def send(self, channel_id: str, channel_type: int, text: str = "hi", **extra):
        body = {
            "channel_id": channel_id,
            "channel_type": channel_type,
            "payload": b64(text),
            **extra,
        }
        return await self.post("/message/send", body)


async def send_as_manager(api, channel_id: str, channel_type: int, from_uid="boss"):
    status, body = await api.post(
        "/message/send",
        {
            "from_uid": from_uid,
            "channel_id": channel_id,
            "channel_type": channel_type,
            "payload": b64("from the manager"),
        },
    )
    assert status == 200, body
    return body["data"]["message_seq"]


async def stream_length(redis, keys, channel_type: int, stored_id: str) -> int:
    return await redis.xlen(keys.channel(channel_type, stored_id).log)
