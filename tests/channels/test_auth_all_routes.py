"""S1: every registered route but /health refuses calls without valid credentials.

The routes come from the app's router, so routes added later are covered too."""

from __future__ import annotations

from broker.http.app import ROUTES
from broker.http.routing import Access
from tests.conftest import MANAGER_TOKEN

PUBLIC_ROUTES = {
    ("GET", "/health"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
}


def one_byte_changed(token: str) -> str:
    return token[:-1] + ("x" if token[-1] != "x" else "y")


def registered_routes(app) -> list[tuple[str, str]]:
    return sorted(
        {
            (route.method, route.resource.canonical)
            for route in app.router.routes()
            # HEAD is implied by GET; "*" is the catch-all answering 404/405
            if route.method not in ("HEAD", "*")
        }
    )


async def test_every_route_needs_credentials(api, login):
    alice = await login("alice")
    routes = registered_routes(api.app)
    assert len(routes) == len(ROUTES)
    # Only liveness and the ops endpoints (issue 9) are public; a new public route
    # must be added here on purpose.
    public = {(r.method, r.path) for r in ROUTES if r.access is Access.PUBLIC}
    assert public == PUBLIC_ROUTES
    checked = [r for r in routes if r not in public]
    assert len(checked) == len(routes) - len(PUBLIC_ROUTES)
    bad_headers = [
        {},
        {"token": ""},
        {"Authorization": "Bearer "},
        {"token": "wrong-token-0123456789"},
        {"token": one_byte_changed(MANAGER_TOKEN)},
        # user credentials: wrong token, one byte off, another user's token, no uid
        {"uid": "alice", "token": "wrong"},
        {"uid": "alice", "token": one_byte_changed(alice.token)},
        {"uid": "bob", "token": alice.token},
        {"uid": "", "token": alice.token},
        {"token": alice.token},
    ]
    failures = []
    for method, path in checked:
        for headers in bad_headers:
            resp = await api.client.request(method, path, json={}, headers=headers)
            if resp.status != 401:
                failures.append((method, path, headers, resp.status))
            else:
                body = await resp.json()
                assert body["status"] == 401
    assert failures == []


async def test_user_credentials_open_only_the_user_routes(api, login):
    alice = await login("alice")

    user_paths = {(r.method, r.path) for r in ROUTES if r.access is Access.USER}
    assert user_paths == {
        ("POST", "/message/send"),
        ("POST", "/channel/messagesync"),
        ("GET", "/channel/max_message_seq"),
        ("GET", "/channel/last_message"),
        ("POST", "/messages"),
        ("POST", "/message"),
    } | {p for p in user_paths if p[1].startswith("/conversation")}
    for method, path in registered_routes(api.app):
        if (method, path) in PUBLIC_ROUTES or (method, path) in user_paths:
            continue
        resp = await api.client.request(method, path, json={}, headers=alice.headers)
        assert resp.status == 401, (method, path)
