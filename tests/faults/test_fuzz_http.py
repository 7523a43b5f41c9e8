"""Fuzzing the HTTP API with Hypothesis: wrong types, huge ints, deep nesting,
invalid base64 and unicode, broken JSON. 0 server errors, every answer a JSON
``{"status", "msg"}`` body, the api process never restarts.

The route list comes from the app's route table, so routes added later are fuzzed
too. The default run is short; ``pytest -m slow`` sends about 10,000 requests.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.http.app import ROUTES
from tests.conftest import MANAGER_TOKEN

POST_ROUTES = sorted({r.path for r in ROUTES if r.method == "POST" and r.body})
GET_ROUTES = sorted({r.path for r in ROUTES if r.method == "GET" and r.query})


def body_fields(path: str) -> list[str]:
    route = next(r for r in ROUTES if r.path == path and r.method == "POST")
    try:
        info = msgspec.inspect.type_info(route.body)
    except Exception:
        return []
    return [f.name for f in getattr(info, "fields", ())]


ALL_FIELDS = sorted({f for p in POST_ROUTES for f in body_fields(p)})

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 2**31, 2**63 - 1, 2**63, 2**64, -(2**63) - 1]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(
        ["", "aGk=", "not base64!", "====", "{s1}", "a:b", "\x00", "é" * 300]
    ),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=10), inner, max_size=4),
    ),
    max_leaves=20,
)
# Bodies that look like real requests: known field names with arbitrary values.
shaped_bodies = st.dictionaries(
    st.sampled_from(ALL_FIELDS or ["x"]), json_values, max_size=8
)
deep = st.integers(min_value=50, max_value=3000).map(lambda n: "[" * n + "]" * n)
raw_bodies = st.one_of(
    shaped_bodies.map(lambda b: json.dumps(b).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    deep.map(str.encode),
    st.binary(max_size=200),
    st.sampled_from(
        [b"", b"{", b'{"payload": "\xff\xfe"}', b"\xef\xbb\xbf{}", b"null"]
    ),
)


def check_answer(resp: requests.Response) -> None:
    assert resp.status_code < 500, (resp.status_code, resp.text[:300])
    data: Any = resp.json()
    if resp.status_code >= 400:
        assert data["status"] == resp.status_code
        assert isinstance(data["msg"], str)


@pytest.fixture
def api_url(procs, settings_env):
    api = procs.api(settings_env)
    yield api
    assert api.alive(), "the api process died"
    assert api.our_tracebacks() == []


@pytest.fixture
def settings_env(settings):
    return settings


def fuzz(api, examples: int) -> None:
    session = requests.Session()
    headers = {"token": MANAGER_TOKEN, "content-type": "application/json"}

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(path=st.sampled_from(POST_ROUTES), raw=raw_bodies)
    def post(path: str, raw: bytes) -> None:
        check_answer(
            session.post(api.url + path, data=raw, headers=headers, timeout=10)
        )

    @settings(max_examples=max(20, examples // 5), deadline=None, database=None)
    @given(
        path=st.sampled_from(GET_ROUTES or ["/health"]),
        query=st.dictionaries(
            st.sampled_from(ALL_FIELDS or ["x"]), st.text(max_size=30)
        ),
    )
    def get(path: str, query: dict[str, str]) -> None:
        check_answer(
            session.get(api.url + path, params=query, headers=headers, timeout=10)
        )

    try:
        post()
        get()
    finally:
        session.close()


def test_fuzz_http_api_short(api_url):
    fuzz(api_url, 100)


@pytest.mark.slow
def test_fuzz_http_api_10k(api_url):
    fuzz(api_url, 8_400)  # + 1,680 GETs: about 10,000 requests
