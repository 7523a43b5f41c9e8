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


async def test_delivery_publisher_groups_by_node_and_reports_offline(
    node, node_settings, redis
):
    import msgspec

    from broker.gateway.delivery import DeliveryPublisher
    from broker.protocol import Delivery, StoredMessage

    async with start_node(node_settings) as other:
        keep = [  # noqa: F841 - kept open
            await node.login("a"),
            await node.login("b"),
            await other.login("c"),
            await other.login("a", device_flag=0),
        ]
        keys = node.services.keys
        pubsub = redis.pubsub()
        await pubsub.subscribe(
            keys.node_channel(node.services.node_id),
            keys.node_channel(other.services.node_id),
        )
        publisher = DeliveryPublisher(redis, keys, node_settings.node_heartbeat_ms)
        message = StoredMessage(
            message_id=7,
            client_msg_no="x",
            from_uid="z",
            channel_id="g",
            channel_type=2,
            timestamp_ms=1,
            payload=b"{}",
        )
        offline = await publisher.publish(
            ["a", "b", "c", "nobody", "____system"], 3, message, "conn-9"
        )
        assert offline == ["nobody"]
        frames = {}
        while len(frames) < 2:
            msg = await pubsub.get_message(timeout=2)
            assert msg is not None
            if msg["type"] == "message":
                channel = msg["channel"].decode()
                frames[channel] = msgspec.msgpack.decode(msg["data"], type=Delivery)
        await pubsub.aclose()
        mine = frames[keys.node_channel(node.services.node_id)]
        theirs = frames[keys.node_channel(other.services.node_id)]
        assert sorted(mine.uids) == ["a", "b"]
        assert sorted(theirs.uids) == ["a", "c"]
        assert mine.seq == 3
        assert mine.origin_conn == "conn-9"
        assert mine.message == message
