"""The official Python client ``wukong-easy-sdk``, used unchanged, against the
gateway. Fan-out is the test stand-in (tests/gateway/fanout.py) until the real
worker lands."""

from __future__ import annotations

import asyncio

import anyio
import pytest
from wukong_easy_sdk import (
    WKIM,
    AuthOptions,
    WKIMChannelType,
    WKIMError,
    WKIMEvent,
    WKIMOptions,
)

FAST = WKIMOptions(ping_interval=1, pong_timeout=2, max_reconnect_attempts=0)


def client(node, uid: str, token: str) -> WKIM:
    return WKIM(node.ws_url, AuthOptions(uid=uid, token=token), FAST)


async def inbox_of(sdk: WKIM) -> asyncio.Queue:
    inbox: asyncio.Queue = asyncio.Queue()
    sdk.on(WKIMEvent.MESSAGE, inbox.put_nowait)
    return inbox


async def test_person_and_group_messages_live_and_acked(node, fanout, redis):
    keys = node.services.keys
    await redis.sadd(keys.channel(2, "g1").members, "alice", "bob")
    alice = client(node, "alice", await node.token("alice"))
    bob = client(node, "bob", await node.token("bob"))
    alice_in, bob_in = await inbox_of(alice), await inbox_of(bob)
    async with alice, bob:
        ack = await alice.send(
            "bob", WKIMChannelType.PERSON, {"type": 1, "content": "hi"}
        )
        assert ack["reasonCode"] == 1
        assert ack["messageSeq"] == 1
        assert isinstance(ack["messageId"], str)
        assert int(ack["messageId"]) > 0
        got = await asyncio.wait_for(bob_in.get(), 5)
        assert got["payload"] == {"type": 1, "content": "hi"}
        assert got["channelId"] == "alice"
        assert got["channelType"] == 1
        assert got["fromUid"] == "alice"
        assert got["messageId"] == ack["messageId"]
        assert got["header"]["redDot"] is True

        reply = await bob.send(
            "alice", WKIMChannelType.PERSON, {"type": 1, "content": "yo"}
        )
        assert reply["messageSeq"] == 2  # one conversation, one seq counter
        got = await asyncio.wait_for(alice_in.get(), 5)
        assert got["channelId"] == "bob"
        assert got["payload"]["content"] == "yo"

        group = await alice.send(
            "g1", WKIMChannelType.GROUP, {"type": 1, "content": "all"}
        )
        assert group["messageSeq"] == 1
        got = await asyncio.wait_for(bob_in.get(), 5)
        assert got["channelId"] == "g1"
        assert got["channelType"] == 2
        assert got["fromUid"] == "alice"
        # The sender's own connection got the send result, not a recv.
        await anyio.sleep(0.3)
        assert alice_in.empty()
        # Every recv was acknowledged: nothing is waiting to be re-sent.
        sessions = [s for s in node.gateway.sessions if s.uid in ("alice", "bob")]
        assert len(sessions) == 2
        with anyio.fail_after(3):
            while any(s.pending for s in sessions):
                await anyio.sleep(0.05)


async def test_bad_token_is_refused_with_code_2(node):
    await node.token("eve")
    sdk = WKIM(node.ws_url, AuthOptions(uid="eve", token="not-the-token"), FAST)
    with pytest.raises(WKIMError) as info:
        await sdk.connect()
    assert info.value.code == 2
    await sdk.destroy()
    unknown = WKIM(node.ws_url, AuthOptions(uid="nobody", token="x"), FAST)
    with pytest.raises(WKIMError) as info:
        await unknown.connect()
    assert info.value.code == 2
    await unknown.destroy()


async def heartbeat_keeps_connection(node, seconds: float) -> None:
    sdk = client(node, "carol", await node.token("carol"))
    errors: list = []
    sdk.on(WKIMEvent.ERROR, errors.append)
    async with sdk:
        await anyio.sleep(seconds)
        assert sdk.is_connected
        await sdk.ping()
    assert errors == [] or all(e.code == -3 for e in errors), errors


async def test_heartbeats_keep_the_connection_short(node):
    await heartbeat_keeps_connection(node, 3)


@pytest.mark.slow
async def test_heartbeats_keep_the_connection_30s(node):
    await heartbeat_keeps_connection(node, 30)
