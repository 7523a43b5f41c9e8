"""S8 size limits: over-cap input is refused with 413/400 and nothing is stored."""

from __future__ import annotations

import base64
import io

import msgspec
from aiohttp.test_utils import TestClient, TestServer

from broker.channels import person_channel_id
from broker.http.app import create_app
from broker.redis_conn import keys_for
from tests.conftest import ApiClient


async def stored_keys(redis, settings) -> list[bytes]:
    """Keys a send would write (logs, metas, dispatch, dedupe); config keys aside."""
    keys = [k async for k in redis.scan_iter(match=f"{settings.key_prefix}*")]
    return [k for k in keys if b"}:" in k]


def body(payload: bytes, **more) -> dict:
    return {
        "from_uid": "alice",
        "channel_id": "bob",
        "channel_type": 1,
        "payload": base64.b64encode(payload).decode(),
        **more,
    }


async def test_http_body_one_byte_over_the_cap_is_413(api, redis, settings):
    cap = settings.max_body
    raw = b'{"from_uid":"alice","channel_id":"bob","channel_type":1,"payload":"'
    raw += b"A" * (cap - len(raw) - 2 + 1) + b'"}'
    assert len(raw) == cap + 1
    resp = await api.client.post(
        "/message/send",
        data=io.BytesIO(raw),
        headers={"token": api.token, "content-type": "application/json"},
    )
    assert resp.status == 413
    assert (await resp.json())["status"] == 413
    assert await stored_keys(redis, settings) == []


async def test_decoded_payload_over_the_cap_is_413(api, redis, settings):
    cap = settings.max_payload
    status, reply = await api.post("/message/send", body(b"x" * (cap + 1)))
    assert (status, reply["status"]) == (413, 413)
    assert str(cap) in reply["msg"]
    status, reply = await api.post(
        "/message/sendbatch",
        {
            "from_uid": "a",
            "subscribers": ["b"],
            "payload": body(b"x" * (cap + 1))["payload"],
        },
    )
    assert status == 413
    assert await stored_keys(redis, settings) == []
    # Exactly at the cap is accepted: the limit is not off by one.
    status, reply = await api.post("/message/send", body(b"x" * cap))
    assert status == 200, reply
    ch = keys_for(settings).channel(1, person_channel_id("alice", "bob"))
    assert await redis.xlen(ch.log) == 1


async def test_list_of_10001_uids_is_400(api, redis, settings):
    uids = [f"u{n}" for n in range(settings.max_list + 1)]
    status, reply = await api.post(
        "/message/sendbatch", {"from_uid": "a", "subscribers": uids, "payload": "aGk="}
    )
    assert (status, reply["status"]) == (400, 400)
    assert "10000" in reply["msg"]
    status, reply = await api.post(
        "/message/send",
        {"header": {"sync_once": 1}, "subscribers": uids, "payload": "aGk="},
    )
    assert status == 400
    assert await stored_keys(redis, settings) == []


async def test_list_limit_is_not_off_by_one(settings, redis):
    small = msgspec.structs.replace(settings, max_list=3)
    async with TestClient(TestServer(create_app(small))) as client:
        api = ApiClient(client)
        for uids, expected in ((["a", "b", "c"], 200), (["a", "b", "c", "d"], 400)):
            status, reply = await api.post(
                "/message/sendbatch",
                {"from_uid": "z", "subscribers": uids, "payload": "aGk="},
            )
            assert status == expected, reply


async def test_invalid_base64_payload_is_400_not_stored(api, redis, settings):
    for bad in ("not base64!", "aGk", "=====", "\u00e9\u00e9"):
        status, reply = await api.post("/message/send", {**body(b""), "payload": bad})
        assert status == 400, (bad, reply)
    assert await stored_keys(redis, settings) == []
