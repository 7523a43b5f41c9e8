import base64
import re

import msgspec
from aiohttp import ClientSession

from broker import metrics
from broker.http.context import SERVICES
from broker.ops import worker_ops
from broker.redis_conn import connect
from broker.redis_server import free_port
from tests.ops.metricstext import names, sample


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def scrape(api) -> str:
    resp = await api.client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    return await resp.text()


def send_body(channel: str, **extra):
    return {
        "from_uid": "alice",
        "channel_id": channel,
        "channel_type": 2,
        "payload": b64("hello"),
        **extra,
    }


# Units a metric name may end in (STYLE §4: names end in their unit).
UNITS = ("_total", "_seconds", "_entries", "_connections", "_shards", "_bytes")


def test_every_metric_name_ends_in_a_unit():
    text = metrics.render().decode()
    ours = {n for n in names(text) if n.startswith("jindou_")}
    assert len(ours) >= 15
    for family in metrics.REGISTRY.collect():
        if not family.name.startswith("jindou_"):
            continue  # prometheus_client's standard process_* and python_* metrics
        name = family.name + ("_total" if family.type == "counter" else "")
        assert name.endswith(UNITS), name


def test_issue_metrics_are_all_defined():
    text = metrics.render().decode()
    # Counters without labels appear at once; labelled ones once touched.
    expected = [
        metrics.HTTP_REQUESTS,
        metrics.HTTP_REQUEST_SECONDS,
        metrics.SEND_SECONDS,
        metrics.MESSAGES,
        metrics.DEDUPE_HITS,
        metrics.CONNECTIONS,
        metrics.DELIVERIES,
        metrics.DELIVERY_DROPS,
        metrics.WORKER_ENTRIES,
        metrics.WORKER_LAG,
        metrics.WORKER_PENDING,
        metrics.WORKER_SHARDS,
        metrics.LEASE_CHANGES,
        metrics.WEBHOOK_DELIVERIES,
        metrics.WEBHOOK_DEAD_LETTERS,
        metrics.REDIS_ERRORS,
    ]
    for metric in expected:
        assert f"# HELP {metric._name}" in text


async def test_http_requests_counted_by_route_template_and_status(api):
    before = await scrape(api)
    await api.post("/message/send", send_body("g1"))
    await api.post("/message/send", {"channel_type": "nope"})
    resp = await api.client.get("/no/such/path/abc123")
    assert resp.status == 404
    resp = await api.client.request("PATCH", "/message/send")
    assert resp.status == 405
    after = await scrape(api)

    def delta(**labels):
        return sample(after, "jindou_http_requests_total", **labels) - sample(
            before, "jindou_http_requests_total", **labels
        )

    assert delta(method="POST", route="/message/send", status="200") == 1
    assert delta(method="POST", route="/message/send", status="400") == 1
    assert delta(method="GET", route="unmatched", status="404") == 1
    assert delta(method="PATCH", route="unmatched", status="405") == 1
    # The raw path of an unmatched request never becomes a label value.
    assert "abc123" not in after
    assert (
        sample(after, "jindou_http_request_seconds_count", route="/message/send")
        - sample(before, "jindou_http_request_seconds_count", route="/message/send")
        == 2
    )


async def test_sends_counted_by_kind_and_outcome(api, redis):
    before = await scrape(api)
    ok, _ = await api.post("/message/send", send_body("g2", client_msg_no="c1"))
    assert ok == 200
    # Same client_msg_no: a dedupe hit; different payload: a conflict.
    assert (await api.post("/message/send", send_body("g2", client_msg_no="c1")))[
        0
    ] == 200
    conflict = send_body("g2", client_msg_no="c1", payload=b64("other"))
    assert (await api.post("/message/send", conflict))[0] == 409
    transient = send_body("g2", header={"no_persist": 1})
    assert (await api.post("/message/send", transient))[0] == 200
    command = send_body("g2", header={"sync_once": 1})
    assert (await api.post("/message/send", command))[0] == 200
    svc = api.app[SERVICES]
    await redis.hset(svc.keys.channel(2, "banned").meta, "ban", "1")
    assert (await api.post("/message/send", send_body("banned")))[0] == 403
    status, _ = await api.post(
        "/message/sendbatch",
        {"from_uid": "alice", "subscribers": ["u1", "u2", "u3"], "payload": b64("x")},
    )
    assert status == 200
    after = await scrape(api)

    def delta(name, **labels):
        return sample(after, name, **labels) - sample(before, name, **labels)

    m = "jindou_messages_total"
    assert delta(m, kind="persistent", outcome="stored") == 4  # 1 + 3 in the batch
    assert delta(m, kind="persistent", outcome="duplicate") == 1
    assert delta(m, kind="persistent", outcome="conflict") == 1
    assert delta(m, kind="persistent", outcome="refused") == 1
    assert delta(m, kind="transient", outcome="published") == 1
    assert delta(m, kind="command", outcome="published") == 1
    assert delta("jindou_dedupe_hits_total") == 2
    # One latency observation per send call, the batch counting once.
    assert delta("jindou_send_seconds_count", kind="persistent") == 5
    assert delta("jindou_send_seconds_count", kind="transient") == 1


async def test_redis_errors_counted_when_storage_is_down(tmp_path, settings):
    from aiohttp.test_utils import TestClient, TestServer

    from broker.http.app import create_app
    from broker.redis_server import RedisProcess
    from tests.conftest import ApiClient

    server = RedisProcess(tmp_path / "r", appendonly=False).start()
    try:
        own = msgspec.structs.replace(settings, redis_url=server.url)
        async with TestClient(TestServer(create_app(own))) as client:
            api = ApiClient(client)
            before = metrics.REDIS_ERRORS.labels("http")._value.get()
            server.stop()
            status, body = await api.post("/message/send", send_body("g3"))
            assert status == 503, body
            assert metrics.REDIS_ERRORS.labels("http")._value.get() == before + 1
            text = await scrape(api)
            assert sample(text, "jindou_redis_errors_total", component="http") >= 1
    finally:
        server.stop()


async def test_worker_ops_server_serves_metrics_health_and_readiness(settings):
    port = free_port()
    redis = connect(settings.redis_url)
    try:
        async with (
            worker_ops(f"127.0.0.1:{port}", redis) as readiness,
            ClientSession() as http,
        ):
            base = f"http://127.0.0.1:{port}"
            async with http.get(base + "/metrics") as resp:
                assert resp.status == 200
                text = await resp.text()
            assert re.search(r"^# TYPE jindou_worker_lag_entries gauge$", text, re.M)
            async with http.get(base + "/health") as resp:
                assert resp.status == 200
                assert await resp.json() == {"status": "ok"}
            async with http.get(base + "/readyz") as resp:
                assert resp.status == 200
                assert (await resp.json())["msg"] == "ready"
            await readiness.start_draining()
            async with http.get(base + "/readyz") as resp:
                assert resp.status == 503
                body = await resp.json()
                assert body["draining"] is True
                assert "draining" in body["failures"]
    finally:
        await redis.aclose()


async def test_worker_ops_server_is_off_without_an_address(settings):
    redis = connect(settings.redis_url)
    try:
        async with worker_ops("", redis) as readiness:
            assert (await readiness.report()).ready
    finally:
        await redis.aclose()
