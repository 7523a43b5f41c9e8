"""Contract test: schemathesis generates requests from /openapi.json and checks the
answers against it (no 5xx, status codes, content types and bodies as documented)."""

import os

import msgspec
import pytest
import redis as redis_sync
import requests
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from broker.http.app import create_app
from tests.conftest import MANAGER_TOKEN
from tests.ops.threadserver import ThreadServer

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def run_contract(settings, examples_per_operation: int, derandomize=False) -> int:
    calls = 0
    with ThreadServer(create_app(settings)) as server:
        spec = requests.get(server.url + "/openapi.json", timeout=10).json()
        schema = schemathesis.openapi.from_dict(spec)
        session = requests.Session()
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) == sum(len(v) for v in spec["paths"].values())
        for operation in operations:

            @given(case=operation.as_strategy())
            @hypothesis_settings(
                max_examples=examples_per_operation,
                deadline=None,
                database=None,
                derandomize=derandomize,
                suppress_health_check=list(HealthCheck),
            )
            def check(case):
                nonlocal calls
                response = case.call(
                    base_url=server.url,
                    session=session,
                    headers={"token": MANAGER_TOKEN},
                    timeout=10,
                )
                calls += 1
                case.validate_response(response, checks=CHECKS)

            check()
        session.close()
    return calls


def delete_keys(settings) -> None:
    client = redis_sync.Redis.from_url(settings.redis_url)
    try:
        for key in client.scan_iter(match=f"{settings.key_prefix}*", count=1000):
            client.delete(key)
    finally:
        client.close()


@pytest.fixture
def contract_settings(settings):
    # Small limits keep generated batches cheap.
    own = msgspec.structs.replace(settings, max_list=50)
    yield own
    delete_keys(own)


# ~40 operations x 15 examples keeps the default run near 20 s; the slow run and
# tests/faults (about 10,000 requests) go further.
@pytest.mark.timeout(300)
def test_api_honours_its_openapi_document(contract_settings):
    examples = int(os.environ.get("JINDOU_CONTRACT_EXAMPLES", "15"))
    # The same examples every run, so CI is repeatable; the slow run explores.
    calls = run_contract(contract_settings, examples, derandomize=True)
    print(f"contract: {calls} generated requests")
    assert calls >= 300


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.skipif(
    os.environ.get("JINDOU_SLOW") != "1", reason="long run: JINDOU_SLOW=1 -m slow"
)
def test_api_honours_its_openapi_document_long(contract_settings):
    assert run_contract(contract_settings, 300) >= 1000
