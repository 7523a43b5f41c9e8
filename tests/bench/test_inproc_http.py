"""`python -m bench.inproc_http`: both apps answer every request 200 through
aiohttp's own protocol objects, and the figures are CPU per request."""

import json
import subprocess
import sys

import pytest

from bench.inproc_http import MemoryTransport, raw_requests
from tests.conftest import REPO_ROOT


def test_memory_transport_counts_answers_by_status():
    answers: list[bool] = []
    transport = MemoryTransport(answers.append)
    transport.writelines([b"HTTP/1.1 200 OK\r\n", b"Content-Length: 0\r\n\r\n"])
    transport.write(b"HTTP/1.1 401 Unauthorized\r\n\r\n")
    transport.write(b"a body chunk, not an answer")
    assert answers == [True, False]


def test_raw_requests_carry_the_body_and_its_length():
    (request,) = raw_requests([b'{"a":1}'])
    head, _, body = request.partition(b"\r\n\r\n")
    assert body == b'{"a":1}'
    assert b"Content-Length: 7" in head
    assert head.startswith(b"POST /message/send HTTP/1.1")


@pytest.mark.timeout(120)
def test_reports_cpu_per_request_of_both_apps():
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "bench.inproc_http"),
            *("--requests", "600", "--rounds", "1", "--connections", "8"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("JSON "))
    result = json.loads(line[5:])
    best = result["us_per_request_best"]
    assert best["baseline"] > 0
    assert best["jindou"] > 0
    assert result["jindou_minus_baseline_us"] == pytest.approx(
        best["jindou"] - best["baseline"], abs=0.02
    )
