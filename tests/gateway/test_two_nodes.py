"""Two api nodes on one Redis: presence, delivery and kicks cross nodes."""

from __future__ import annotations

from broker.gateway.session import CloseCode
from tests.gateway.conftest import start_node
from tests.gateway.test_protocol import send_params


async def test_delivery_presence_and_kicks_across_nodes(node, node_settings, fanout):
    async with start_node(node_settings) as other:
        assert other.services.node_id != node.services.node_id
        alice = await node.login("alice", device_flag=1)
        bob = await other.login("bob")
        # Presence is global: either node's API sees both users.
        status, body = await other.api.post("/user/onlinestatus", ["alice", "bob"])
        assert status == 200
        assert sorted(e["uid"] for e in body) == ["alice", "bob"]
        # A message from a node-1 client reaches a node-2 client.
        sent = await alice.call("send", send_params("bob"))
        recv = (await bob.notification("recv"))["params"]
        assert recv["messageId"] == sent["result"]["messageId"]
        assert recv["channelId"] == "alice"
        # device_quit through node 2's API kicks alice on node 1.
        status, _ = await other.api.post(
            "/user/device_quit", {"uid": "alice", "device_flag": 1}
        )
        assert status == 200
        assert (await alice.notification("disconnect"))["params"]["reasonCode"] == 12
        assert await alice.closed() == CloseCode.KICKED
        # A master login on node 2 kicks bob's other same-flag devices on both nodes.
        bob_on_1 = await node.login("bob", device_id="other-desk")
        await other.login("bob", device_id="new-desk", level=1)
        assert await bob.closed() == CloseCode.KICKED
        assert await bob_on_1.closed() == CloseCode.KICKED
