"""S2: no token (user or manager) ever reaches a log line, at DEBUG level, in the
test process (caplog) or in a real `jindou api` process's log output."""

from __future__ import annotations

import logging
import secrets
import signal
import subprocess
import sys

import aiohttp
import anyio
import msgspec

from broker.redis_server import free_port
from tests.channels.helpers import TOKENS_USED, b64
from tests.conftest import MANAGER_TOKEN, REPO_ROOT, process_env


def secrets_used(count: int) -> list[str]:
    tokens = [f"secret-{i}-{secrets.token_hex(10)}" for i in range(count)]
    TOKENS_USED.extend(tokens)
    return tokens


async def exercise(post, tokens: list[str], wrong: list[str]) -> None:
    """Register tokens, use them, and fail 50 auth attempts with known strings.

    ``post(path, body, headers)`` returns the HTTP status."""
    for i, token in enumerate(tokens):
        uid = f"user{i}"
        assert (
            await post(
                "/user/token", {"uid": uid, "token": token}, {"token": MANAGER_TOKEN}
            )
            == 200
        )
        await post(
            "/channel",
            {"channel_id": "g", "channel_type": 2, "subscribers": [uid]},
            {"token": MANAGER_TOKEN},
        )
        body = {"channel_id": "g", "channel_type": 2, "payload": b64(token)}
        assert await post("/message/send", body, {"uid": uid, "token": token}) == 200
        # a refused client send and a refused read, with valid credentials
        assert (
            await post(
                "/message/send", {**body, "from_uid": "x"}, {"uid": uid, "token": token}
            )
            == 403
        )
        sync = {"login_uid": "other", "channel_id": "g", "channel_type": 2}
        assert (
            await post("/channel/messagesync", sync, {"uid": uid, "token": token})
            == 403
        )
        # a bad /user/token call carrying a token
        assert (
            await post(
                "/user/token", {"uid": "a@b", "token": token}, {"token": MANAGER_TOKEN}
            )
            == 400
        )
    for i, bad in enumerate(wrong):
        headers = (
            {"token": bad} if i % 2 else {"uid": f"user{i % len(tokens)}", "token": bad}
        )
        assert await post("/channel/messagesync", {"login_uid": "x"}, headers) == 401
        assert (
            await post("/channel", {"channel_id": "g", "channel_type": 2}, headers)
            == 401
        )


async def test_no_token_in_the_test_process_logs(api, caplog):
    caplog.set_level(logging.DEBUG)
    tokens, wrong = secrets_used(5), secrets_used(50)

    async def post(path, body, headers):
        resp = await api.client.post(path, json=body, headers=headers)
        return resp.status

    await exercise(post, tokens, wrong)
    assert caplog.records  # DEBUG capture really saw log output
    text = caplog.text + "\n".join(
        f"{r.getMessage()} {r.args!r} {r.__dict__!r}" for r in caplog.records
    )
    leaked = [t for t in [*tokens, *wrong, MANAGER_TOKEN] if t in text]
    assert leaked == []


async def test_no_token_in_a_real_api_process_log(settings, tmp_path, redis):
    port = free_port()
    child_settings = msgspec.structs.replace(settings, api_addr=f"127.0.0.1:{port}")
    log_file = tmp_path / "api.log"
    env = process_env(child_settings, JINDOU_LOG_LEVEL="DEBUG")
    tokens, wrong = secrets_used(3), secrets_used(50)
    with log_file.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "broker", "api"],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session:
            with anyio.fail_after(20):
                while True:
                    try:
                        async with session.get(url + "/health") as resp:
                            if resp.status == 200:
                                break
                    except aiohttp.ClientError:
                        await anyio.sleep(0.1)

            async def post(path, body, headers):
                async with session.post(url + path, json=body, headers=headers) as resp:
                    return resp.status

            await exercise(post, tokens, wrong)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log_file.read_text()
    assert "listening" in text  # the log really was captured
    leaked = [t for t in [*tokens, *wrong, MANAGER_TOKEN] if t in text]
    assert leaked == []
