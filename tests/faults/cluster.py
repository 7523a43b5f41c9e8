"""A small deployment for ledger runs with live delivery: a private Redis, api and
worker children (killed or stopped by pid), WebSocket clients of every user, and the
final check of logs, projections and what each client holds.

Only public behaviour is used: the HTTP API, the WebSocket protocol and key names
from ``broker.keys``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import anyio

from broker.channels import ChannelType
from broker.keys import Keys
from broker.redis_conn import connect, keys_for
from broker.settings import Settings
from tests.conftest import MANAGER_TOKEN
from tests.faults.ledger import (
    OK,
    Ledger,
    Report,
    channel_members,
    check,
    check_client_views,
    check_projections,
    dispatch_drained,
)
from tests.faults.load import LoadClient, LoadStats, Workload
from tests.faults.procs import ApiChild
from tests.faults.wsclients import WsUser, register_token, user_channels


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def create_groups(
    session: aiohttp.ClientSession, api_url: str, workload: Workload
) -> None:
    """Groups exist with their subscribers before any message (recipients)."""
    for spec in workload.channels:
        if spec.channel_type == ChannelType.PERSON:
            continue
        async with session.post(
            f"{api_url}/channel",
            json={
                "channel_id": spec.channel_id,
                "channel_type": spec.channel_type,
                "subscribers": list(spec.members),
            },
            headers={"token": MANAGER_TOKEN},
        ) as resp:
            assert resp.status == 200, await resp.text()


def workload_specs(workload: Workload) -> list[tuple[int, str, tuple[str, ...]]]:
    return [(s.channel_type, s.channel_id, s.members) for s in workload.channels]


def workload_users(workload: Workload) -> list[str]:
    return sorted({uid for spec in workload.channels for uid in spec.members})


async def connect_user(
    session: aiohttp.ClientSession, api: ApiChild, workload: Workload, uid: str
) -> WsUser:
    token = await register_token(session, api.url, MANAGER_TOKEN, uid)
    channels = user_channels(workload_specs(workload), uid)
    return await WsUser(session, api.ws_url, uid, token, channels).connect()


async def node_ids(redis: Any, keys: Keys) -> list[str]:
    return [bytes(n).decode() for n in await redis.zrange(keys.nodes, 0, -1)]


async def subscribed(redis: Any, keys: Keys, node_id: str) -> bool:
    """Whether the node's delivery channel has its subscriber (PUBSUB NUMSUB)."""
    reply = await redis.pubsub_numsub(keys.node_channel(node_id))
    return bool(reply and int(reply[0][1]) > 0)


async def wait_subscribed(
    redis: Any, keys: Keys, node_id: str, timeout: float = 10.0
) -> float:
    """Seconds until the node is subscribed again (polled every 5 ms)."""
    started = time.monotonic()
    with anyio.fail_after(timeout):
        while not await subscribed(redis, keys, node_id):
            await anyio.sleep(0.005)
    return time.monotonic() - started


async def wait_drained(redis: Any, keys: Keys, timeout: float = 60.0) -> float:
    started = time.monotonic()
    with anyio.fail_after(timeout):
        while not await dispatch_drained(redis, keys):
            await anyio.sleep(0.1)
    return time.monotonic() - started


async def warm_up(
    client: LoadClient, workload: Workload, users: dict[str, WsUser], ledger: Ledger
) -> None:
    """One message per channel, each seen live by a recipient: the workers hold
    their leases and the node routes deliveries (so the run measures faults, not
    start-up)."""
    for n, spec in enumerate(workload.channels):
        sender, receiver = spec.members[0], spec.members[1]
        channel_id = (
            receiver if spec.channel_type == ChannelType.PERSON else spec.channel_id
        )
        op = await client.send(spec.channel_type, channel_id, sender, f"warm{n}")
        assert op.outcome == OK, op
        with anyio.fail_after(30):
            while op.seq not in users[receiver].live[op.channel]:
                await anyio.sleep(0.02)


@dataclass
class LiveRun:
    """What a ledger run with live clients produced."""

    ledger: Ledger = field(default_factory=Ledger)
    stats: LoadStats = field(default_factory=LoadStats)
    users: dict[str, WsUser] = field(default_factory=dict)
    extra_views: dict[str, dict[tuple[int, str], set[int]]] = field(
        default_factory=dict
    )

    def views(self) -> dict[str, dict[tuple[int, str], set[int]]]:
        out: dict[str, dict[tuple[int, str], set[int]]] = {}
        for uid, user in self.users.items():
            out[uid] = dict(user.seqs())
        for uid, extra in self.extra_views.items():
            view = out.setdefault(uid, {})
            for channel, seqs in extra.items():
                view[channel] = view.get(channel, set()) | seqs
        return out

    def latencies(self, uids: list[str]) -> list[float]:
        """Send start → first live arrival, per (client, message)."""
        return [latency for _, latency in self.timed_latencies(uids)]

    def timed_latencies(self, uids: list[str]) -> list[tuple[float, float]]:
        """(send start, latency) per (client, message), wall clock."""
        sent = {
            (op.channel, op.seq): op.t_invoke
            for op in self.ledger.ops
            if op.outcome == OK
        }
        out = []
        for uid in uids:
            for key, arrived in self.users[uid].arrivals.items():
                if key in sent:
                    out.append((sent[key], arrived - sent[key]))
        return out


async def final_check(
    settings: Settings, run: LiveRun, *, settle: float = 1.0
) -> tuple[Report, dict]:
    """After the load: workers drained, in-flight deliveries landed; then logs,
    projections (person and group) and every client's view."""
    redis = connect(settings.redis_url)
    keys = keys_for(settings)
    try:
        await wait_drained(redis, keys)
        await anyio.sleep(settle)
        report, states = await check(redis, keys, run.ledger)
        members = await channel_members(redis, keys, states)
        await check_projections(redis, keys, run.ledger, states, members, report)
        check_client_views(states, run.views(), members, report)
    finally:
        await redis.aclose()
    return report, states


@asynccontextmanager
async def live_clients(
    session: aiohttp.ClientSession, api: ApiChild, workload: Workload, run: LiveRun
) -> AsyncIterator[anyio.abc.TaskGroup]:
    """Every user of the workload connected to ``api``, reading in the background."""
    async with anyio.create_task_group() as tg:
        for uid in workload_users(workload):
            user = await connect_user(session, api, workload, uid)
            run.users[uid] = user
            await tg.start(user.run)
        yield tg
        for user in run.users.values():
            await user.close()
