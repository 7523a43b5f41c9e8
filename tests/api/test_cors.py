"""CORS, opt-in (JINDOU_CORS_ORIGINS): preflights of known paths, and the allow
header on answers to an allowed origin only."""

from __future__ import annotations

import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer

from broker.http.app import create_app
from broker.http.cors import allowed_origin
from broker.settings import ConfigError, load_settings, parse_origins
from tests.conftest import MANAGER_TOKEN

APP = "https://app.example.com"


def test_origins_parse_and_match():
    origins = parse_origins(f" {APP}/ , http://localhost:3000")
    assert origins == {APP, "http://localhost:3000"}
    assert allowed_origin(APP, origins) == APP
    assert allowed_origin("https://evil.example.com", origins) is None
    assert allowed_origin(None, origins) is None
    assert allowed_origin("https://any.example.com", parse_origins("*")) == "*"
    assert parse_origins("") == frozenset()
    for bad in ("*, https://a.example.com", "app.example.com"):
        with pytest.raises(ConfigError):
            load_settings({"JINDOU_CORS_ORIGINS": bad})


def cors_client(settings, origins: str) -> TestClient:
    app = create_app(msgspec.structs.replace(settings, cors_origins=origins))
    return TestClient(TestServer(app))


async def test_a_preflight_from_an_allowed_origin_is_answered(settings):
    async with cors_client(settings, APP) as client:
        resp = await client.options(
            "/conversation/sync",
            headers={
                "Origin": APP,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "uid, token, content-type",
            },
        )
        assert resp.status == 204
        assert resp.headers["Access-Control-Allow-Origin"] == APP
        assert "POST" in resp.headers["Access-Control-Allow-Methods"]
        allowed = resp.headers["Access-Control-Allow-Headers"]
        assert {"uid", "token", "content-type"} <= {
            h.strip() for h in allowed.split(",")
        }
        # Another origin gets no allow header: the browser refuses the request.
        resp = await client.options(
            "/conversation/sync", headers={"Origin": "https://evil.example.com"}
        )
        assert "Access-Control-Allow-Origin" not in resp.headers


async def test_answers_to_an_allowed_origin_carry_the_header(settings):
    async with cors_client(settings, APP) as client:
        resp = await client.get(
            "/route", headers={"token": MANAGER_TOKEN, "Origin": APP}
        )
        assert resp.status == 200
        assert resp.headers["Access-Control-Allow-Origin"] == APP
        assert "x-request-id" in resp.headers["Access-Control-Expose-Headers"]
        # Errors too, so the app can read why.
        resp = await client.get("/route", headers={"Origin": APP})
        assert resp.status == 401
        assert resp.headers["Access-Control-Allow-Origin"] == APP
        resp = await client.get(
            "/route",
            headers={"token": MANAGER_TOKEN, "Origin": "https://evil.example.com"},
        )
        assert "Access-Control-Allow-Origin" not in resp.headers


async def test_off_by_default(api):
    resp = await api.client.options("/conversation/sync", headers={"Origin": APP})
    assert resp.status == 405  # no preflight route: CORS is off
    assert "Access-Control-Allow-Origin" not in resp.headers
    resp = await api.client.get(
        "/route", headers={"token": MANAGER_TOKEN, "Origin": APP}
    )
    assert "Access-Control-Allow-Origin" not in resp.headers
