"""Fixtures for the channel, user and permission tests: users with real tokens.

Every token these tests register or try is remembered; an autouse package fixture
captures all log output at DEBUG while they run and, at the end, checks that none
of those tokens (nor the manager token) was ever logged (S2)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator

import pytest

from broker.redis_conn import keys_for
from tests.channels.helpers import TOKENS_USED, UserClient
from tests.conftest import MANAGER_TOKEN


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.getMessage()} {record.args!r}")
        if record.exc_info:
            self.lines.append(logging.Formatter().formatException(record.exc_info))


@pytest.fixture(scope="package", autouse=True)
def no_token_in_any_log() -> Iterator[None]:
    capture = _Capture()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(capture)
        root.setLevel(old_level)
    text = "\n".join(capture.lines)
    assert capture.lines, "no log output was captured"
    leaked = [t for t in (*TOKENS_USED, MANAGER_TOKEN) if t in text]
    assert leaked == [], f"{len(leaked)} tokens appear in the logs"


@pytest.fixture
def keys(settings):
    return keys_for(settings)


@pytest.fixture
def login(api):
    """``await login(uid)`` registers a fresh token and returns a UserClient."""

    async def make(uid: str, device_flag: int = 0) -> UserClient:
        token = "tk-" + secrets.token_hex(12)
        TOKENS_USED.append(token)
        status, body = await api.post(
            "/user/token", {"uid": uid, "token": token, "device_flag": device_flag}
        )
        assert (status, body) == (200, {"status": 200})
        return UserClient(api, uid, token)

    return make
