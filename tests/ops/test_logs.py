import base64
import io
import json
import logging

import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer

from broker.http.app import create_app
from broker.logs import make_handler
from broker.redis_server import RedisProcess
from tests.conftest import MANAGER_TOKEN

SECRET_PAYLOAD = "top-secret-payload-7f3a"


@pytest.fixture
def captured():
    """Every log line (DEBUG and up) in the JSON format, as text."""
    stream = io.StringIO()
    handler = make_handler("json", stream)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(old_level)


def lines(stream) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line]


async def test_request_id_is_returned_and_generated(api):
    resp = await api.client.get("/health", headers={"X-Request-Id": "abc-123"})
    assert resp.headers["X-Request-Id"] == "abc-123"
    resp = await api.client.get("/health")
    generated = resp.headers["X-Request-Id"]
    assert len(generated) == 16
    # A header that is not a sane token is replaced, never echoed.
    resp = await api.client.get("/health", headers={"X-Request-Id": "x" * 65})
    assert resp.headers["X-Request-Id"] != "x" * 65
    resp = await api.client.get("/nope", headers={"X-Request-Id": "r-404"})
    assert resp.status == 404
    assert resp.headers["X-Request-Id"] == "r-404"


async def test_every_line_of_a_request_carries_its_id(tmp_path, settings, captured):
    server = RedisProcess(tmp_path / "r", appendonly=False).start()
    try:
        own = msgspec.structs.replace(settings, redis_url=server.url)
        async with TestClient(TestServer(create_app(own))) as client:
            server.stop()  # the send fails: an error line and an access line
            resp = await client.post(
                "/message/send",
                json={"from_uid": "a", "channel_id": "g", "channel_type": 2},
                headers={"token": MANAGER_TOKEN, "X-Request-Id": "req-42"},
            )
            assert resp.status in (400, 503)
            resp = await client.post(
                "/message/send",
                json={
                    "from_uid": "a",
                    "channel_id": "g",
                    "channel_type": 2,
                    "payload": base64.b64encode(b"x").decode(),
                },
                headers={"token": MANAGER_TOKEN, "X-Request-Id": "req-43"},
            )
            assert resp.status == 503
    finally:
        server.stop()
    records = lines(captured)
    of_request = [r for r in records if r.get("request_id") == "req-43"]
    assert {r["logger"] for r in of_request} >= {"broker.http.app", "jindou.access"}
    access = [r for r in of_request if r["logger"] == "jindou.access"]
    assert len(access) == 1
    assert access[0]["msg"].startswith("POST /message/send 503 ")
    # Lines outside any request (startup) carry no id.
    startup = [r for r in records if r["logger"] == "broker.node"]
    assert startup
    assert all("request_id" not in r for r in startup)


async def test_no_token_or_payload_in_any_log_line(api, captured):
    encoded = base64.b64encode(SECRET_PAYLOAD.encode()).decode()
    body = {"from_uid": "alice", "channel_type": 2, "payload": encoded}
    assert (await api.post("/message/send", {**body, "channel_id": "g"}))[0] == 200
    # refusals and invalid input too
    assert (await api.post("/message/send", {**body, "channel_id": "a{b"}))[0] == 400
    bad = {**body, "channel_id": "g", "header": {"no_persist": "x"}}
    assert (await api.post("/message/send", bad))[0] == 400
    user_token = "user-token-should-never-be-logged"
    resp = await api.client.post(
        "/message/send",
        json={**body, "channel_id": "g"},
        headers={"token": user_token, "uid": "alice"},
    )
    assert resp.status == 401
    await api.post(
        "/message/sendbatch",
        {"from_uid": "alice", "subscribers": ["b", "c"], "payload": encoded},
    )
    text = captured.getvalue()
    assert "jindou.access" in text  # something was logged at all
    for secret in (MANAGER_TOKEN, user_token, SECRET_PAYLOAD, encoded):
        assert secret not in text


def test_text_format_tags_lines_with_the_request_id():
    from broker.logs import REQUEST_ID

    stream = io.StringIO()
    logger = logging.getLogger("jindou.test.text")
    logger.addHandler(make_handler("text", stream))
    logger.propagate = False
    try:
        token = REQUEST_ID.set("rid-7")
        logger.warning("inside")
        REQUEST_ID.reset(token)
        logger.warning("outside")
    finally:
        logger.handlers.clear()
        logger.propagate = True
    inside, outside = stream.getvalue().splitlines()
    assert "jindou.test.text [rid-7]: inside" in inside
    assert "jindou.test.text: outside" in outside
