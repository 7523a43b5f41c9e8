"""Kicks a node missed while it was unsubscribed are made up for (credentials.py)."""

from __future__ import annotations

import anyio
from aiohttp import WSMsgType

from broker.gateway.credentials import credential_of, missed_kick
from broker.gateway.session import CloseCode
from broker.users import token_record


def test_only_a_removed_or_master_replaced_record_means_a_missed_kick():
    mine = token_record("tok", 0).encode()
    credential = credential_of(mine)
    assert missed_kick(credential, mine) is None  # unchanged
    assert missed_kick(credential, None) == "device quit"  # device_quit
    master = token_record("other", 1).encode()
    assert missed_kick(credential, master) == "login in other device"
    slave = token_record("other", 0).encode()
    assert missed_kick(credential, slave) is None  # a slave token kicks no one


async def close_code_sent(client) -> int | None:
    """The code of the server's close frame (``closed()`` reports the client's
    own state, 1006 when the server drops the socket right after its close)."""
    with anyio.fail_after(5):
        while True:
            msg = await client.ws.receive()
            if msg.type is WSMsgType.CLOSE:
                return msg.data
            if msg.type in (WSMsgType.CLOSED, WSMsgType.ERROR):
                return None


async def hold_unsubscribed(redis, node):
    """Drop the node's subscription and refuse new connections until restored."""
    clients = int((await redis.info("clients"))["connected_clients"])
    pubsub = len(await redis.client_list(_type="pubsub"))
    restore = (await redis.config_get("maxclients"))["maxclients"]
    await redis.config_set("maxclients", clients - pubsub)
    await redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    return restore


async def test_a_kick_published_during_a_subscription_gap_still_lands(node, redis):
    web = await node.login("alice", device_flag=1)
    app = await node.login("alice", device_flag=0)
    bob = await node.login("bob", device_flag=1)
    gaps = node.gateway.subscriber.resubscriptions
    restore = await hold_unsubscribed(redis, node)
    try:
        # Published while the node cannot hear them: device_quit for alice's web,
        # a master token for bob's web; alice's app gets a slave token (no kick).
        for body in (
            {"uid": "alice", "device_flag": 1},
            {"uid": "bob", "token": "bob-new", "device_flag": 1, "device_level": 1},
            {"uid": "alice", "token": "app-new", "device_flag": 0, "device_level": 0},
        ):
            path = "/user/token" if "token" in body else "/user/device_quit"
            status, _ = await node.api.post(path, body)
            assert status == 200
        await anyio.sleep(0.3)
        assert (await web.call("ping"))["result"] is None  # not kicked yet
    finally:
        await redis.config_set("maxclients", restore)
    with anyio.fail_after(5):
        while node.gateway.subscriber.resubscriptions == gaps:
            await anyio.sleep(0.02)
    assert (await web.notification("disconnect"))["params"]["reason"] == "device quit"
    assert await close_code_sent(web) == CloseCode.KICKED
    notice = await bob.notification("disconnect")
    assert notice["params"]["reasonCode"] == 12
    assert await close_code_sent(bob) == CloseCode.KICKED
    assert (await app.call("ping"))["result"] is None
