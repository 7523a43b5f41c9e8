"""Paths and methods no route serves: JSON errors, with the request id."""


async def test_unknown_path_is_a_json_404(api):
    resp = await api.client.post(
        "/message/sendx", json={}, headers={"X-Request-Id": "r1"}
    )
    assert resp.status == 404
    assert await resp.json() == {"status": 404, "msg": "no such route"}
    assert resp.headers["X-Request-Id"] == "r1"


async def test_wrong_method_on_a_known_path_is_a_json_405_with_allow(api):
    resp = await api.client.get("/message/send")
    assert resp.status == 405
    assert (await resp.json())["status"] == 405
    assert resp.headers["Allow"] == "POST"
    resp = await api.client.delete("/health")
    assert resp.status == 405
    assert resp.headers["Allow"] == "GET"
