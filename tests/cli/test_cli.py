"""The `jindou` command as a user runs it: real processes, stopped by pid."""

import json
import os
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from broker.redis_server import free_port
from tests.conftest import REPO_ROOT


def jindou(*args, env=None, **kwargs):
    base = {k: v for k, v in os.environ.items() if not k.startswith("JINDOU_")}
    base["PYTHONPATH"] = str(REPO_ROOT)
    return subprocess.Popen(
        [sys.executable, "-m", "broker", *args],
        cwd=REPO_ROOT,
        env={**base, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def call(url, path, token, body=None):
    req = urllib.request.Request(
        url + path,
        method="POST" if body is not None else "GET",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"token": token, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_http(url, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/health", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(url)


def children_of(pid):
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return [int(p) for p in out.split()]


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purpose
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"JINDOU_SHARDS": "lots", "JINDOU_MANAGER_TOKEN": "x" * 20}, "JINDOU_SHARDS"),
        ({}, "JINDOU_MANAGER_TOKEN"),
        ({"JINDOU_MANAGER_TOKEN": "short"}, "JINDOU_MANAGER_TOKEN"),
        ({"JINDOU_MANAGER_TOKEN": "changeme"}, "JINDOU_MANAGER_TOKEN"),
    ],
)
def test_api_refuses_bad_config_with_one_line(env, needle):
    proc = jindou("api", env=env)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 2
    assert needle in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_worker_starts_connects_and_stops_cleanly(redis_server):
    proc = jindou(
        "worker", env={"JINDOU_REDIS_URL": redis_server.url, "JINDOU_KEY_PREFIX": "w1:"}
    )
    try:
        deadline = time.monotonic() + 15
        line = ""
        while "connected" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline()
        assert "connected" in line
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        proc.kill()
        proc.communicate()


def test_worker_fails_clearly_when_redis_is_down():
    proc = jindou(
        "worker", env={"JINDOU_REDIS_URL": f"redis://127.0.0.1:{free_port()}"}
    )
    out, err = proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert "Traceback" not in err


def test_up_runs_everything_and_keeps_messages_across_restarts(tmp_path):
    data_dir = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    ws_port = free_port()
    env = {
        "JINDOU_API_ADDR": f"127.0.0.1:{port}",
        "JINDOU_WS_ADDR": f"127.0.0.1:{ws_port}",
    }

    def start():
        proc = jindou("up", "--data-dir", str(data_dir), env=env)
        header = "".join(proc.stdout.readline() for _ in range(4))
        assert url in header, header
        assert f"ws://127.0.0.1:{ws_port}" in header, header
        wait_http(url)
        return proc, header

    proc, header = start()
    try:
        token = (data_dir / "manager_token").read_text().strip()
        assert token in header
        assert stat.S_IMODE((data_dir / "manager_token").stat().st_mode) == 0o600
        status, body = call(
            url,
            "/message/send",
            token,
            {"channel_id": "g1", "channel_type": 2, "payload": "aGk="},
        )
        assert status == 200, body
        status, _ = call(
            url,
            "/message/send",
            "wrong-token-0123456789",
            {"channel_id": "g1", "channel_type": 2, "payload": "aGk="},
        )
        assert status == 401
        kids = children_of(proc.pid)
        assert len(kids) == 3  # redis-server, api, worker
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        time.sleep(0.2)
        assert not [k for k in kids if alive(k)]
    finally:
        proc.kill()
        proc.communicate()

    proc, _ = start()  # same data dir: same token, earlier messages still there
    try:
        assert (data_dir / "manager_token").read_text().strip() == token
        status, body = call(
            url,
            "/channel/messagesync",
            token,
            {"login_uid": "u", "channel_id": "g1", "channel_type": 2, "limit": 10},
        )
        assert status == 200
        assert [m["message_seq"] for m in body["messages"]] == [1]
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.communicate()


def test_help_lists_every_command():
    proc = jindou("--help")
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0
    for command in ("up", "api", "worker", "status"):
        assert command in out


def test_redis_password_is_not_printed():
    port = free_port()
    proc = jindou(
        "worker",
        env={"JINDOU_REDIS_URL": f"redis://user:s3cret-pass@127.0.0.1:{port}/0"},
    )
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "s3cret-pass" not in err
    assert "***" in err
