"""GET /route and POST /route/batch: the address a client's SDK connects to."""

from __future__ import annotations

import msgspec
from aiohttp.test_utils import TestClient, TestServer

from broker.http.app import create_app
from broker.http.routes_route import client_addresses
from broker.settings import Settings
from tests.conftest import MANAGER_TOKEN, ApiClient

EXTERNAL = {
    "external_ws_addr": "ws://im.example.com:5200",
    "external_wss_addr": "wss://im.example.com",
}


def test_a_gateway_on_every_interface_is_reached_by_the_callers_host():
    settings = Settings(ws_addr="0.0.0.0:5200")
    found = client_addresses(settings, "10.1.2.3", intranet=False)
    assert (found.tcp_addr, found.ws_addr, found.wss_addr) == (
        "",
        "ws://10.1.2.3:5200",
        "",
    )
    assert client_addresses(settings, "::1", intranet=False).ws_addr == (
        "ws://[::1]:5200"
    )
    bound = Settings(ws_addr="192.168.0.7:5300")
    assert client_addresses(bound, "10.1.2.3", intranet=False).ws_addr == (
        "ws://192.168.0.7:5300"
    )


def test_external_addresses_win_except_for_intranet():
    settings = Settings(ws_addr="0.0.0.0:5200", **EXTERNAL)
    public = client_addresses(settings, "10.1.2.3", intranet=False)
    assert (public.ws_addr, public.wss_addr) == (
        "ws://im.example.com:5200",
        "wss://im.example.com",
    )
    inside = client_addresses(settings, "10.1.2.3", intranet=True)
    assert (inside.ws_addr, inside.wss_addr) == ("ws://10.1.2.3:5200", "")


async def test_route_answers_as_wukongim(api, settings):
    status, body = await api.get("/route", uid="alice")
    assert status == 200
    gateway = f"ws://{settings.ws_addr}"  # the tests bind 127.0.0.1:<free port>
    assert body == {"tcp_addr": "", "ws_addr": gateway, "wss_addr": ""}
    status, body = await api.get("/route", intranet="abc")
    assert status == 400
    assert body["status"] == 400


async def test_route_batch_gives_one_entry_for_all_uids(settings):
    settings = msgspec.structs.replace(settings, **EXTERNAL)
    async with TestClient(TestServer(create_app(settings))) as client:
        api = ApiClient(client)
        status, body = await api.post("/route/batch", ["alice", "bob", "alice"])
        assert status == 200
        assert body == [
            {
                "tcp_addr": "",
                "ws_addr": "ws://im.example.com:5200",
                "wss_addr": "wss://im.example.com",
                "uids": ["alice", "bob"],
            }
        ]
        resp = await client.post(
            "/route/batch?intranet=1", json=["carol"], headers={"token": MANAGER_TOKEN}
        )
        assert resp.status == 200
        assert (await resp.json())[0]["ws_addr"] == f"ws://{settings.ws_addr}"
        for bad in ({"uids": ["alice"]}, ["a{b"], [""], [1]):
            status, body = await api.post("/route/batch", bad)
            assert status == 400, bad
            assert body["status"] == 400 and body["msg"]
        resp = await client.post("/route/batch", json=["alice"])  # no token
        assert resp.status == 401
