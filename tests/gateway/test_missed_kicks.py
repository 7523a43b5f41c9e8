"""Kicks a node missed while it was unsubscribed are replayed from the kick log
(gateway/control.py), each only to connections that registered before it."""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio

from broker.gateway.control import (
    LOG_END,
    Kick,
    _entry_id,
    log_position,
    publish_kick,
)
from broker.gateway.hub import Hub
from broker.gateway.kick_replay import KickReplay
from broker.gateway.session import CloseCode
from broker.redis_conn import keys_for


@dataclass
class Registered:
    """A connection as the Hub sees it (its Protocol), recording kicks."""

    conn_id: str
    uid: str
    kicks_seen: int
    device_flag: int = 1
    device_level: int = 0
    device_id: str = "d1"
    kicked: list[bytes] = field(default_factory=list)

    def push(self, frame: bytes) -> None:
        pass

    def push_recv(self, message_id: str, frame: bytes, *, persisted: bool) -> None:
        pass

    def kick(self, notice: bytes) -> None:
        self.kicked.append(notice)


def test_log_positions_order_as_stream_ids():
    ids = ["0-0", "5-0", "5-1", "5-10", "6-0", "1764000000000-3"]
    positions = [log_position(i) for i in ids]
    assert positions == sorted(positions)
    assert len(set(positions)) == len(ids)
    assert log_position(b"5-1") == log_position("5-1")
    assert all(_entry_id(log_position(i)) == i for i in ids)
    assert max(positions) < LOG_END


def test_a_replayed_kick_reaches_only_connections_registered_before_it():
    hub = Hub()
    kick_at = log_position("100-0")
    older = Registered("c1", "alice", kicks_seen=log_position("99-5"))
    newer = Registered("c2", "alice", kicks_seen=log_position("100-0"))
    other_device = Registered("c3", "alice", log_position("1-0"), device_id="d2")
    registering = Registered("c4", "alice", kicks_seen=LOG_END)
    for conn in (older, newer, other_device, registering):
        hub.add(conn)
    kick = Kick(uid="alice", device_flag=1, device_id="d1")
    assert hub.kick(kick, logged_at=kick_at) == 1
    assert older.kicked and not newer.kicked and not other_device.kicked
    assert not registering.kicked
    # Heard live, a kick applies to every connection it matches.
    assert hub.kick(kick) == 3


async def test_a_connection_registering_during_a_replay_catches_up(redis, settings):
    """A gap ends while a connection's registration is under way: the replay passes
    it over (no log position yet), so once registered it replays on its own."""
    hub = Hub()
    replay = KickReplay(redis, keys_for(settings), hub)
    settled = Registered("c1", "alice", kicks_seen=LOG_END)
    registering = Registered("c2", "alice", kicks_seen=LOG_END, device_id="d2")
    hub.add(settled)
    hub.add(registering)
    settled_gaps = replay.gaps
    settled.kicks_seen = await position_now(redis, settings)
    replay.registered(settled, settled_gaps)  # no gap meanwhile: nothing to do
    gaps_before = replay.gaps
    # Logged before the registering connection's position: not for it.
    await publish_kick(redis, keys_for(settings), Kick(uid="alice", device_id="d2"))
    registered_at = await position_now(redis, settings)
    # Missed while unsubscribed: kicks of both devices, logged after both
    # connections' positions.
    for device_id in ("d1", "d2"):
        await publish_kick(
            redis, keys_for(settings), Kick(uid="alice", device_id=device_id)
        )
    replay.after_gap()
    await replay.settled()
    assert settled.kicked and not registering.kicked
    registering.kicks_seen = registered_at  # its registration returns
    replay.registered(registering, gaps_before)
    await replay.settled()
    assert len(registering.kicked) == 1  # the kick after its position only


async def test_no_catch_up_without_a_gap_during_registration(redis, settings):
    hub = Hub()
    replay = KickReplay(redis, keys_for(settings), hub)
    conn = Registered("c1", "alice", kicks_seen=LOG_END)
    hub.add(conn)
    gaps_before = replay.gaps
    conn.kicks_seen = await position_now(redis, settings)
    # Logged after it registered, but heard live (no gap): not the replay's to do.
    await publish_kick(redis, keys_for(settings), Kick(uid="alice"))
    replay.registered(conn, gaps_before)
    await replay.settled()
    assert not conn.kicked


async def position_now(redis, settings) -> int:
    """The kick log's position now (as the registration pipeline reads it)."""
    last = await redis.xrevrange(keys_for(settings).gateway_kicks, count=1)
    return log_position(last[0][0]) if last else 0


async def hold_unsubscribed(redis, node):
    """Drop the node's subscription and refuse new connections until restored."""
    clients = int((await redis.info("clients"))["connected_clients"])
    pubsub = len(await redis.client_list(_type="pubsub"))
    restore = (await redis.config_get("maxclients"))["maxclients"]
    await redis.config_set("maxclients", clients - pubsub)
    await redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    return restore


async def kicked_with(client, reason: str) -> None:
    assert (await client.notification("disconnect"))["params"]["reason"] == reason
    assert await client.closed() == CloseCode.KICKED


async def test_kicks_published_during_a_subscription_gap_still_land(node, redis):
    web = await node.login("alice", device_flag=1)
    app = await node.login("alice", device_flag=0)
    bob = await node.login("bob", device_flag=1)
    carol = await node.login("carol", device_flag=1, device_id="phone")
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
        # A second login of carol's phone replaces the first (a kick by a login,
        # which changes no token record); and alice's web logs in again after its
        # device_quit: that kick was logged before, so it must spare this one.
        carol_again = await node.login("carol", device_flag=1, device_id="phone")
        web_again = await node.login("alice", device_flag=1)
        await anyio.sleep(0.3)
        assert (await web.call("ping"))["result"] is None  # not kicked yet
        assert (await carol.call("ping"))["result"] is None
    finally:
        await redis.config_set("maxclients", restore)
    with anyio.fail_after(5):
        while node.gateway.subscriber.resubscriptions == gaps:
            await anyio.sleep(0.02)
    await kicked_with(web, "device quit")
    notice = await bob.notification("disconnect")
    assert notice["params"]["reasonCode"] == 12
    assert await bob.closed() == CloseCode.KICKED
    await kicked_with(carol, "login in other device")
    for survivor in (app, carol_again, web_again):
        assert (await survivor.call("ping"))["result"] is None
