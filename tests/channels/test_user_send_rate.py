"""HTTP sends with a user's own credentials are rate limited per uid (429, reason
22), as WebSocket sends are per connection; the manager's are not."""

from __future__ import annotations

import msgspec
from aiohttp.test_utils import TestClient, TestServer

from broker.http.app import create_app
from broker.user_limits import UserSendLimits
from tests.channels.helpers import UserClient, b64
from tests.conftest import ApiClient
from tests.gateway.test_units import Clock


def test_each_user_has_his_own_bucket():
    clock = Clock()
    limits = UserSendLimits(rate=2.0, burst=2, clock=clock)
    assert [limits.take("alice") for _ in range(3)] == [True, True, False]
    assert limits.take("bob")  # alice's sends do not use up bob's
    clock.now = 0.5  # one token back at 2/s
    assert limits.take("alice")
    assert not limits.take("alice")


def test_rate_zero_is_no_limit_and_the_map_is_bounded():
    assert all(UserSendLimits(rate=0, burst=1).take("a") for _ in range(1000))
    limits = UserSendLimits(rate=1.0, burst=1, clock=Clock(), max_users=3)
    for uid in ("a", "b", "c", "d"):
        assert limits.take(uid)
    assert len(limits._buckets) == 1  # started over at the bound


async def test_http_user_sends_over_the_rate_get_429(settings):
    settings = msgspec.structs.replace(settings, user_send_rate=1.0, user_send_burst=2)
    async with TestClient(TestServer(create_app(settings))) as client:
        api = ApiClient(client)
        status, _ = await api.post(
            "/user/token", {"uid": "alice", "token": "tok-alice-rate"}
        )
        assert status == 200
        alice = UserClient(api, "alice", "tok-alice-rate")
        results = [await alice.send("bob", 1) for _ in range(3)]
        assert [status for status, _ in results] == [200, 200, 429]
        assert results[2][1]["reason_code"] == 22
        # The manager is not limited.
        for _ in range(5):
            status, _ = await api.post(
                "/message/send",
                {
                    "from_uid": "alice",
                    "channel_id": "bob",
                    "channel_type": 1,
                    "payload": b64("hi"),
                },
            )
            assert status == 200
