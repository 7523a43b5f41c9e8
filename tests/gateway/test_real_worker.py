"""The gateway with real ``jindou worker`` processes (issue 4) instead of the test
stand-in: the official SDK clients receive person and group messages live."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
from wukong_easy_sdk import WKIM, AuthOptions, WKIMChannelType, WKIMEvent, WKIMOptions

from tests.conftest import REPO_ROOT, process_env

FAST = WKIMOptions(ping_interval=1, pong_timeout=2, max_reconnect_attempts=0)


@pytest.fixture
def worker(node_settings):
    proc = subprocess.Popen(
        [sys.executable, "-m", "broker", "worker"],
        cwd=REPO_ROOT,
        env=process_env(node_settings, JINDOU_UVLOOP="0"),
    )
    yield proc
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def test_live_delivery_through_a_real_worker(node, worker):
    status, body = await node.api.post(
        "/channel",
        {"channel_id": "team", "channel_type": 2, "subscribers": ["alice", "bob"]},
    )
    assert status == 200, body
    alice = WKIM(
        node.ws_url, AuthOptions(uid="alice", token=await node.token("alice")), FAST
    )
    bob = WKIM(node.ws_url, AuthOptions(uid="bob", token=await node.token("bob")), FAST)
    inbox: asyncio.Queue = asyncio.Queue()
    bob.on(WKIMEvent.MESSAGE, inbox.put_nowait)
    async with alice, bob:
        ack = await alice.send(
            "bob", WKIMChannelType.PERSON, {"type": 1, "content": "p"}
        )
        got = await asyncio.wait_for(inbox.get(), 20)  # the worker takes its leases
        assert got["messageId"] == ack["messageId"]
        assert got["channelId"] == "alice"
        ack = await alice.send(
            "team", WKIMChannelType.GROUP, {"type": 1, "content": "g"}
        )
        got = await asyncio.wait_for(inbox.get(), 10)
        assert got["messageId"] == ack["messageId"]
        assert got["channelId"] == "team"
        assert got["payload"] == {"type": 1, "content": "g"}
