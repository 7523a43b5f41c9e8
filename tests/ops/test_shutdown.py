"""Graceful shutdown of real `python -m broker api|worker` processes on SIGTERM."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import msgspec
import pytest
import redis as redis_sync

from broker.keys import Keys
from broker.redis_server import RedisProcess, free_port
from tests.conftest import REPO_ROOT, process_env

GRACE = 10.0


def wait_http(url: str, timeout: float = 20.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.status
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def spawn(role: str, settings, **extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "broker", role],
        cwd=REPO_ROOT,
        env=process_env(
            settings,
            JINDOU_SHUTDOWN_GRACE=str(GRACE),
            JINDOU_LOG_FORMAT="json",
            **extra,
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.fixture
def cleanup():
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()


def read_response(sock: socket.socket) -> tuple[int, dict]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before an answer"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return status, json.loads(body)


def test_api_finishes_in_flight_request_and_exits_0_on_sigterm(
    settings, cleanup, tmp_path
):
    # A private Redis we can pause: the request is then provably in flight (its
    # handler waits on Redis) when SIGTERM arrives.
    redis_server = RedisProcess(tmp_path / "redis", appendonly=False).start()
    try:
        port = free_port()
        own = msgspec.structs.replace(
            settings, api_addr=f"127.0.0.1:{port}", redis_url=redis_server.url
        )
        proc = spawn("api", own)
        cleanup.append(proc)
        assert wait_http(f"http://127.0.0.1:{port}/readyz") == 200

        uids = [f"user{i}" for i in range(3000)]
        body = json.dumps(
            {"from_uid": "system", "subscribers": uids, "payload": "aGk="}
        ).encode()
        head = (
            f"POST /message/sendbatch HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"token: {own.manager_token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        sock = socket.create_connection(("127.0.0.1", port), timeout=GRACE + 5)
        os.kill(redis_server.pid, signal.SIGSTOP)
        try:
            sock.sendall(head + body)
            time.sleep(0.3)  # the handler now waits on the paused Redis
            proc.send_signal(signal.SIGTERM)
            sent_at = time.monotonic()
            time.sleep(0.5)
            # The listener is closed: new connections are refused...
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
            os.kill(redis_server.pid, signal.SIGCONT)
            # ...while the request in flight completes with a full, stored answer.
            status, answer = read_response(sock)
        finally:
            os.kill(redis_server.pid, signal.SIGCONT)
            sock.close()
        assert status == 200, answer
        assert answer == {"fail_uids": [], "reason": []}
        code = proc.wait(GRACE + 5)
        elapsed = time.monotonic() - sent_at
        stderr = proc.stderr.read().decode()
        assert code == 0, stderr
        assert elapsed < GRACE
        client = redis_sync.Redis.from_url(own.redis_url)
        try:
            keys = Keys(prefix=own.key_prefix, shards=own.shards)
            stored = sum(client.xlen(keys.dispatch(k)) for k in range(own.shards))
        finally:
            client.close()
        assert stored == len(uids)
    finally:
        redis_server.stop()
    # JINDOU_LOG_FORMAT=json: every line is one JSON object.
    log = [json.loads(line) for line in stderr.splitlines() if line]
    assert any("draining" in r["msg"] for r in log)
    assert any(r["msg"] == "api stopped" for r in log)
    assert any(
        r["msg"].startswith("POST /message/sendbatch 200") and r.get("request_id")
        for r in log
    )
    assert own.manager_token not in stderr


def test_worker_serves_ops_endpoints_and_exits_0_on_sigterm(settings, cleanup):
    port = free_port()
    proc = spawn("worker", settings, JINDOU_WORKER_METRICS_ADDR=f"127.0.0.1:{port}")
    cleanup.append(proc)
    base = f"http://127.0.0.1:{port}"
    assert wait_http(base + "/readyz") == 200
    assert wait_http(base + "/health") == 200
    with urllib.request.urlopen(base + "/metrics", timeout=5) as resp:
        assert b"jindou_worker_lag_entries" in resp.read()
    proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    assert proc.wait(GRACE + 5) == 0
    assert time.monotonic() - started < GRACE
