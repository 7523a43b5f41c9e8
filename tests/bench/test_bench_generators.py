"""The HTTP load generators against the baseline endpoint: wrk when installed and
the aiohttp fallback both report the same summary, and failures are counted."""

import subprocess
import sys

import pytest

from bench.cluster import stop_process, wait_healthy
from bench.httpgen import HttpLoad, LoadError, parse_summary, wrk_path
from bench.scenarios_http import headers, write_send_bodies
from broker.redis_server import free_port
from tests.conftest import REPO_ROOT

TOKEN = "generator-test-token-0123456789"


@pytest.fixture
def baseline_url():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.baseline_http", str(port)],
        cwd=REPO_ROOT,
        env={"BENCH_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"},
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc, timeout=20)
        yield f"http://127.0.0.1:{port}/message/send"
    finally:
        stop_process(proc)


@pytest.mark.parametrize("use_wrk", [True, False])
def test_generator_reports_requests_and_latency(tmp_path, baseline_url, use_wrk):
    if use_wrk and wrk_path() is None:
        pytest.skip("wrk is not installed (apt-get install -y wrk)")
    load = HttpLoad(tmp_path, prefer_wrk=use_wrk)
    bodies = write_send_bodies(tmp_path / "bodies.txt", count=20)
    (run,) = load.run([baseline_url], bodies, 4, 1.0, headers(TOKEN))
    assert run.requests > 0
    assert run.errors == 0
    assert 0 < run.p50_ms <= run.p99_ms <= run.max_ms
    assert run.rate > 0
    assert run.cpu_s > 0  # the generator's own CPU, for its share of the cores
    # A wrong token: every request is a non-2xx and counted as an error.
    (bad,) = load.run([baseline_url], bodies, 2, 1.0, headers("wrong-token-000000"))
    assert bad.requests > 0
    assert bad.errors == bad.requests
    assert bad.rate == 0


def test_a_generator_without_summary_is_an_error():
    with pytest.raises(LoadError, match="no summary"):
        parse_summary("Usage: wrk <options> <url>\n")
