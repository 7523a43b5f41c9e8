"""An in-process load generator that records every send in a Ledger.

Clients retry an ``unknown`` outcome (5xx, timeout, connection lost) with the same
``client_msg_no`` until it is acknowledged, definitely refused, or ``retry_for``
seconds passed, as a real client would.
"""

from __future__ import annotations

import base64
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import anyio

from broker.channels import ChannelType
from tests.faults.ledger import FAIL, OK, UNKNOWN, Ledger, Op


@dataclass(frozen=True)
class ChannelSpec:
    channel_type: int
    channel_id: str  # groups: the id; person: "" (peer chosen per send)
    members: tuple[str, ...]


@dataclass
class Workload:
    """Channels and their members; picks (channel, sender) for each send."""

    channels: list[ChannelSpec]
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    @classmethod
    def small(cls, *, dms: int = 6, groups: int = 3, group_size: int = 4) -> Workload:
        users = [f"u{i}" for i in range(max(2 * dms, group_size * groups))]
        specs = [
            ChannelSpec(int(ChannelType.PERSON), "", (users[2 * i], users[2 * i + 1]))
            for i in range(dms)
        ]
        for g in range(groups):
            members = tuple(users[g * group_size : (g + 1) * group_size])
            specs.append(ChannelSpec(int(ChannelType.GROUP), f"g{g}", members))
        return cls(specs)

    def pick(self) -> tuple[int, str, str]:
        """(channel_type, channel id as sent, from_uid)."""
        spec = self.rng.choice(self.channels)
        sender = self.rng.choice(spec.members)
        if spec.channel_type == ChannelType.PERSON:
            peer = next(u for u in spec.members if u != sender)
            return spec.channel_type, peer, sender
        return spec.channel_type, spec.channel_id, sender


def payload_for(client_msg_no: str, size: int = 0) -> str:
    # The same identity always carries the same payload, so a retry is not a 409;
    # ``size`` pads it (bulky messages fill slow readers' queues sooner).
    text = f"m:{client_msg_no}:" + "x" * size
    return base64.b64encode(text.encode()).decode()


@dataclass
class LoadStats:
    statuses: Counter[int | str] = field(default_factory=Counter)
    latencies_ok: list[float] = field(default_factory=list)
    timeline: list[tuple[float, int | str]] = field(default_factory=list)
    retries: int = 0

    def percentile(self, q: float) -> float:
        if not self.latencies_ok:
            return 0.0
        ordered = sorted(self.latencies_ok)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class LoadClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: Callable[[], str],
        token: str,
        ledger: Ledger,
        stats: LoadStats,
        *,
        timeout: float = 5.0,
        payload_bytes: int = 0,
    ) -> None:
        self.payload_bytes = payload_bytes
        self.session = session
        self.base_url = base_url
        self.token = token
        self.ledger = ledger
        self.stats = stats
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def attempt(
        self, channel_type: int, channel_id: str, from_uid: str, cmn: str
    ) -> Op:
        op = self.ledger.invoke(channel_type, channel_id, from_uid, cmn)
        body = {
            "header": {"red_dot": 1},
            "from_uid": from_uid,
            "channel_id": channel_id,
            "channel_type": channel_type,
            "client_msg_no": cmn,
            "payload": payload_for(cmn, self.payload_bytes),
        }
        started = time.monotonic()
        status: int | str
        try:
            async with self.session.post(
                f"{self.base_url()}/message/send",
                json=body,
                headers={"token": self.token},
                timeout=self.timeout,
            ) as resp:
                status = resp.status
                data = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            status = type(exc).__name__
            self.ledger.complete(op, UNKNOWN)
        else:
            if status == 200:
                result = data["data"]
                self.ledger.complete(
                    op, OK, seq=result["message_seq"], message_id=result["message_id"]
                )
                self.stats.latencies_ok.append(time.monotonic() - started)
            elif 400 <= status < 500:
                self.ledger.complete(op, FAIL, code=status)
            else:
                self.ledger.complete(op, UNKNOWN, code=status)
        self.stats.statuses[status] += 1
        self.stats.timeline.append((time.time(), status))
        return op

    async def send(
        self,
        channel_type: int,
        channel_id: str,
        from_uid: str,
        cmn: str,
        *,
        retry_for: float = 10.0,
        retry_delay: float = 0.1,
    ) -> Op:
        deadline = time.monotonic() + retry_for
        op = await self.attempt(channel_type, channel_id, from_uid, cmn)
        while op.outcome == UNKNOWN and time.monotonic() < deadline:
            await anyio.sleep(retry_delay)
            self.stats.retries += 1
            op = await self.attempt(channel_type, channel_id, from_uid, cmn)
        return op


async def run_load(
    client: LoadClient,
    workload: Workload,
    *,
    total: int,
    rate: float,
    concurrency: int = 16,
    resend_fraction: float = 0.05,
    retry_for: float = 10.0,
    prefix: str = "c",
    resend_window: int = 0,
) -> None:
    """``total`` sends paced at ``rate``/s by ``concurrency`` tasks; a fraction of
    them re-send an earlier acknowledged identity (a client retry after success).

    ``resend_window``: re-send only among the last that many acknowledged sends
    (0: any). With log retention a retry of a message retention has already cut is
    stored again, by design (docs/design-notes.md, "Dedupe through the index"), so
    a run with retention re-sends recent messages only."""
    started = time.monotonic()
    counter = iter(range(total))
    acked: list[Op] = []

    async def one_task() -> None:
        for n in counter:
            delay = started + n / rate - time.monotonic()
            if delay > 0:
                await anyio.sleep(delay)
            if acked and workload.rng.random() < resend_fraction:
                old = workload.rng.choice(acked[-resend_window:])
                await client.send(
                    old.channel_type,
                    old.channel_id,
                    old.from_uid,
                    old.client_msg_no,
                    retry_for=retry_for,
                )
                continue
            ct, cid, uid = workload.pick()
            op = await client.send(ct, cid, uid, f"{prefix}{n}", retry_for=retry_for)
            if op.outcome == OK:
                acked.append(op)

    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(one_task)
