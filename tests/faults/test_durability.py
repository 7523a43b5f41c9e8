"""Strict durability (C2, R5): an ack only after the write is fsynced."""

from __future__ import annotations

import base64
import subprocess
import sys

import pytest
from aiohttp.test_utils import TestClient, TestServer

from broker.durability import (
    FsyncGate,
    FsyncMode,
    NotDurable,
    fsynced_locally,
    parse_version,
    strict_mode,
)
from broker.http.app import create_app
from broker.http.context import SERVICES
from broker.redis_conn import connect
from broker.redis_server import RedisProcess
from broker.settings import ConfigError
from tests.conftest import MANAGER_TOKEN, REPO_ROOT, ApiClient, process_env
from tests.faults.conftest import settings_for


def send_body(cmn: str, text: str = "hi") -> dict:
    return {
        "from_uid": "alice",
        "channel_id": "bob",
        "channel_type": 1,
        "client_msg_no": cmn,
        "payload": base64.b64encode(text.encode()).decode(),
    }


# -- the ack decision (pure) ---------------------------------------------------------
@pytest.mark.parametrize(
    ("reply", "acked"),
    [
        ([0, 0], False),
        ([1, 0], True),
        ([1, 2], True),
        ([0, 3], False),  # replicas without a local fsync do not count
        ([], False),
        (None, False),
        (RuntimeError("ERR WAITAOF cannot be used"), False),
    ],
)
def test_ack_decision_on_waitaof_reply(reply, acked):
    assert fsynced_locally(reply) is acked


def test_gate_refuses_a_zero_reply_with_503_and_counts():
    gate = FsyncGate(FsyncMode.WAITAOF)
    gate.check([1, 0])
    with pytest.raises(NotDurable) as info:
        gate.check([0, 0])
    assert info.value.status == 503
    assert (gate.confirmed, gate.refused) == (1, 1)


@pytest.mark.parametrize(
    ("version", "appendonly", "appendfsync", "mode"),
    [
        ((7, 2, 4), "yes", "everysec", FsyncMode.WAITAOF),
        ((8, 0), "yes", "no", FsyncMode.WAITAOF),
        ((7, 0, 15), "yes", "always", FsyncMode.ALWAYS),
        ((6, 2, 14), "yes", "always", FsyncMode.ALWAYS),
    ],
)
def test_strict_mode_choice(version, appendonly, appendfsync, mode):
    assert strict_mode(version, appendonly, appendfsync) is mode


@pytest.mark.parametrize(
    ("version", "appendonly", "appendfsync", "says"),
    [
        ((7, 0, 15), "yes", "everysec", "appendfsync always"),
        ((7, 2, 4), "no", "always", "appendonly yes"),
        ((6, 2), "no", "always", "appendonly yes"),
    ],
)
def test_strict_mode_refuses_untrustworthy_servers(
    version, appendonly, appendfsync, says
):
    with pytest.raises(ConfigError, match=says) as info:
        strict_mode(version, appendonly, appendfsync)
    assert "\n" not in str(info.value)


def test_parse_version():
    assert parse_version("7.2.4") == (7, 2, 4)
    assert parse_version("255.255.255") == (255, 255, 255)
    assert parse_version("7.0.15-rc1") == (7, 0)
    assert parse_version("") == ()


# -- older Redis: refuse to start unless appendfsync always --------------------------
def server_version(server: RedisProcess) -> tuple[int, ...]:
    out = subprocess.run(
        [server.command()[0], "--version"], capture_output=True, text=True, check=True
    ).stdout
    return parse_version(out.split("v=", 1)[1].split()[0])


def test_strict_api_refuses_to_start_on_old_redis_with_everysec(aof_redis):
    if server_version(aof_redis) >= (7, 2):
        pytest.skip("this redis-server has WAITAOF; the refusal is for older ones")
    settings = settings_for(aof_redis, api_addr="127.0.0.1:0")
    proc = subprocess.run(
        [sys.executable, "-m", "broker", "api"],
        cwd=REPO_ROOT,
        env=process_env(settings, JINDOU_DURABILITY="strict"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("jindou: JINDOU_DURABILITY=strict needs Redis >= 7.2")
    assert "appendfsync everysec" in last


async def test_strict_on_old_redis_with_appendfsync_always(procs, tmp_path):
    server = procs.redis(RedisProcess(tmp_path / "always", appendfsync="always"))
    if server_version(server) >= (7, 2):
        pytest.skip("this redis-server has WAITAOF")
    settings = settings_for(server, durability="strict")
    async with TestClient(TestServer(create_app(settings))) as client:
        api = ApiClient(client, MANAGER_TOKEN)
        status, body = await api.post("/message/send", send_body("a1"))
        assert status == 200, body
        gate = api.app[SERVICES].store.gate
        assert gate.mode is FsyncMode.ALWAYS
        # Redis fsyncs before replying: no WAITAOF round trip is made.
        assert (gate.confirmed, gate.refused) == (0, 0)


# -- Redis >= 7.2 (Valkey): WAITAOF after every append --------------------------------
async def test_every_strict_ack_follows_a_confirmed_waitaof(valkey):
    settings = settings_for(valkey, durability="strict")
    async with TestClient(TestServer(create_app(settings))) as client:
        api = ApiClient(client, MANAGER_TOKEN)
        gate = api.app[SERVICES].store.gate
        assert gate.mode is FsyncMode.WAITAOF
        acks = 0
        for n in range(20):
            status, body = await api.post("/message/send", send_body(f"w{n}"))
            assert status == 200, body
            assert body["data"]["message_seq"] == n + 1
            acks += 1
        status, body = await api.post(
            "/message/sendbatch",
            {"from_uid": "alice", "subscribers": ["x", "y", "z"], "payload": "aGk="},
        )
        assert status == 200, body
        acks += 1
        # A retry of an acknowledged message is acknowledged again only after a wait.
        status, body = await api.post("/message/send", send_body("w0"))
        assert (status, body["data"]["message_seq"]) == (200, 1)
        acks += 1
        assert (gate.confirmed, gate.refused) == (acks, 0)


async def test_strict_answers_503_when_the_fsync_cannot_be_confirmed(valkey):
    settings = settings_for(valkey, durability="strict")
    admin = connect(valkey.url)
    try:
        async with TestClient(TestServer(create_app(settings))) as client:
            api = ApiClient(client, MANAGER_TOKEN)
            gate = api.app[SERVICES].store.gate
            # With the AOF off, WAITAOF refuses: the write must not be acknowledged.
            await admin.config_set("appendonly", "no")
            status, body = await api.post("/message/send", send_body("x1"))
            assert status == 503, body
            assert "retry with the same client_msg_no" in body["msg"]
            assert (gate.refused, gate.confirmed) == (1, 0)
            # Back on AOF, the retry is acknowledged once with the original seq.
            await admin.config_set("appendonly", "yes")
            status, body = await api.post("/message/send", send_body("x1"))
            assert status == 200, body
            assert body["data"]["message_seq"] == 1
            assert gate.confirmed == 1
    finally:
        await admin.aclose()


async def test_normal_mode_makes_no_waitaof(valkey):
    settings = settings_for(valkey)
    async with TestClient(TestServer(create_app(settings))) as client:
        api = ApiClient(client, MANAGER_TOKEN)
        status, _ = await api.post("/message/send", send_body("n1"))
        assert status == 200
        gate = api.app[SERVICES].store.gate
        assert (gate.mode, gate.confirmed) == (FsyncMode.NONE, 0)
