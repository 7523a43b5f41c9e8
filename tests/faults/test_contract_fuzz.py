"""S6: schemathesis against the api's own OpenAPI document (``GET /openapi.json``).

The short contract run lives with the OpenAPI work; this is the big one: about
10,000 generated requests (positive and negative) under ``pytest -m slow``, plus a
smoke-sized default. Checks: no server error, responses match their schema; the api
process is never restarted and logs no traceback.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from tests.conftest import MANAGER_TOKEN

CHECKS = "not_a_server_error,response_schema_conformance"


def openapi(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(f"{url}/openapi.json", timeout=5) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def operations(spec: dict) -> int:
    return sum(
        1
        for item in spec.get("paths", {}).values()
        for method in item
        if method in {"get", "post", "put", "delete", "patch"}
    )


def requests_made(report_dir) -> int:
    """HTTP interactions recorded in schemathesis's ndjson report."""
    count = 0
    for path in report_dir.glob("*.ndjson"):
        for line in path.read_text().splitlines():
            event = json.loads(line).get("ScenarioFinished")
            if event:
                count += len(event["recorder"].get("interactions", {}))
    return count


def run_schemathesis(
    procs, settings, tmp_path, total: int, phases: str = "examples,coverage,fuzzing"
) -> int:
    api = procs.api(settings)
    spec = openapi(api.url)
    if spec is None:
        pytest.skip("the api serves no /openapi.json yet")
    per_operation = max(1, math.ceil(total / max(1, operations(spec))))
    pid = api.pid
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from schemathesis.cli import schemathesis; schemathesis()",
            "run",
            f"{api.url}/openapi.json",
            "--checks",
            CHECKS,
            "--max-examples",
            str(per_operation),
            "--header",
            f"token: {MANAGER_TOKEN}",
            "--phases",
            phases,
            "--generation-database",
            "none",
            "--seed",
            "8",
            "--workers",
            "2",
            "--no-color",
            "--report",
            "ndjson",
            "--report-dir",
            str(tmp_path / "st"),
        ],
        cwd=tmp_path,  # schemathesis keeps a cache in its working directory
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert api.alive()
    assert api.pid == pid, "the api process restarted"
    assert api.our_tracebacks() == []
    return requests_made(tmp_path / "st")


def test_schemathesis_smoke(procs, settings, tmp_path):
    # Seconds: the OpenAPI work has its own default contract run; this is a smoke of
    # the big run's harness.
    made = run_schemathesis(procs, settings, tmp_path, total=30, phases="fuzzing")
    assert made >= 14


@pytest.mark.slow
def test_schemathesis_10k(procs, settings, tmp_path):
    made = run_schemathesis(procs, settings, tmp_path, total=15_000)
    print(f"schemathesis: {made} requests, 0 failures")
    assert made >= 9_000
