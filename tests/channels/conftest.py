"""Fixtures for the channel, user and permission tests: users with real tokens."""

from __future__ import annotations

import secrets

import pytest

from broker.redis_conn import keys_for
from tests.channels.helpers import UserClient


@pytest.fixture
def keys(settings):
    return keys_for(settings)


@pytest.fixture
def login(api):
    """``await login(uid)`` registers a fresh token and returns a UserClient."""

    async def make(uid: str, device_flag: int = 0) -> UserClient:
        token = "tk-" + secrets.token_hex(12)
        status, body = await api.post(
            "/user/token", {"uid": uid, "token": token, "device_flag": device_flag}
        )
        assert (status, body) == (200, {"status": 200})
        return UserClient(api, uid, token)

    return make
