"""Slow consumers (R16): clients that stop reading are closed when their outbox is
full, while the others keep receiving promptly. The gateway runs as a real
``jindou api`` process; clients and the fan-out stand-in run in the test."""

from __future__ import annotations

import base64
import json
import time

import anyio
import pytest

from broker.redis_conn import keys_for
from tests.gateway.conftest import RawClient, api_process
from tests.gateway.fanout import FanoutHelper
from tests.gateway.rawsocket import stalled_client


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def reader(client: RawClient, arrivals: dict[int, float]) -> None:
    """Read recvs, ack them, note when each seq arrived."""
    while True:
        params = (await client.notification("recv", timeout=60))["params"]
        arrivals.setdefault(params["messageSeq"], time.monotonic())
        await client.send_json(
            {
                "method": "recvack",
                "params": {
                    "messageId": params["messageId"],
                    "messageSeq": params["messageSeq"],
                },
            }
        )


async def run_slow_consumers(
    settings,
    redis,
    *,
    stalled: int,
    normal: int,
    rate: float,
    seconds: float,
    content_bytes: int = 8_000,
    **env: str,
):
    """``stalled`` clients stop reading while ``rate`` messages a second (of about
    4/3 of ``content_bytes``) go to a group of everybody. The kernel holds about
    0.5 MB per socket (JINDOU_WS_SOCKET_SNDBUF) before the outbox fills.

    Returns (seconds until every stalled client was closed, latencies, sent)."""
    # Every client comes from 127.0.0.1: lift the per-IP caps (S9, tested apart).
    env = {
        "JINDOU_WS_CONN_RATE_PER_IP": "0",
        "JINDOU_WS_MAX_CONNS_PER_IP": "0",
        **env,
    }
    async with api_process(settings, JINDOU_WS_RETRY_MS="60000", **env) as api:
        keys = keys_for(settings)
        port = int(api.ws_url.rsplit(":", 1)[1])
        stalled_uids = [f"s{i}" for i in range(stalled)]
        normal_uids = [f"n{i}" for i in range(normal)]
        await redis.sadd(keys.channel(2, "busy").members, *stalled_uids, *normal_uids)
        sockets = [
            await stalled_client(port, uid, await api.token(redis, uid))
            for uid in stalled_uids
        ]
        clients = [await api.login(redis, uid) for uid in normal_uids]
        helper = FanoutHelper(redis, keys, settings.node_heartbeat_ms, static=True)
        arrivals: list[dict[int, float]] = [{} for _ in clients]
        sent_at: dict[int, float] = {}
        content = "x" * content_bytes
        payload = base64.b64encode(json.dumps({"type": 1, "content": content}).encode())
        closed_after: list[float] = []
        started = time.monotonic()

        async def watch_stalled() -> None:
            while True:
                async with redis.pipeline(transaction=False) as pipe:
                    for uid in stalled_uids:
                        pipe.hlen(keys.connections(uid))
                    counts = await pipe.execute()
                if not any(counts):
                    closed_after.append(time.monotonic() - started)
                    return
                await anyio.sleep(0.1)

        async def produce() -> None:
            body = {
                "from_uid": "boss",
                "channel_id": "busy",
                "channel_type": 2,
                "payload": payload.decode(),
            }
            next_at = time.monotonic()
            while time.monotonic() - started < seconds:
                t0 = time.monotonic()
                status, reply = await api.post("/message/send", body)
                assert status == 200, reply
                sent_at[reply["data"]["message_seq"]] = t0
                next_at += 1 / rate
                await anyio.sleep(max(0.0, next_at - time.monotonic()))

        async with anyio.create_task_group() as tg:
            await tg.start(helper.run)
            for client, box in zip(clients, arrivals, strict=True):
                tg.start_soon(reader, client, box)
            tg.start_soon(watch_stalled)
            await produce()
            with anyio.fail_after(10):
                while not all(len(box) >= len(sent_at) for box in arrivals):
                    await anyio.sleep(0.05)
            with anyio.move_on_after(max(0.0, 10 - (time.monotonic() - started))):
                while not closed_after:
                    await anyio.sleep(0.05)
            tg.cancel_scope.cancel()
        for sock in sockets:
            sock.close()

        for box in arrivals:
            assert sorted(box) == sorted(sent_at)  # every normal client got all
        latencies = [box[seq] - sent_at[seq] for box in arrivals for seq in sent_at]

        return closed_after, latencies, len(sent_at)


# The short run shares 2 busy cores with the rest of the suite (and, here, other
# engineers' runs), so it checks a looser latency bound and a 256 KiB outbox; the
# slow run checks the target with the defaults (1,000 messages or 1 MiB, p99 <
# 150 ms).
SHORT_P99_BOUND = 1.0


async def test_stalled_readers_are_closed_and_others_stay_fast(settings, redis):
    closed_after, latencies, sent = await run_slow_consumers(
        settings,
        redis,
        stalled=20,
        normal=5,
        rate=20,
        seconds=6,
        JINDOU_WS_QUEUE_BYTES=str(256 * 1024),
    )
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    print(
        f"R16 short: {sent} msgs, stalled closed after {closed_after} s, "
        f"p50 {p50:.3f} p99 {p99:.3f}"
    )
    assert closed_after, "stalled readers were not closed within 10 s"
    assert closed_after[0] < 10
    assert p99 < SHORT_P99_BOUND


@pytest.mark.slow
async def test_100_stalled_readers_full(settings, redis):
    closed_after, latencies, sent = await run_slow_consumers(
        settings,
        redis,
        stalled=100,
        normal=20,
        rate=50,
        seconds=15,
        content_bytes=4_000,
    )
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    print(
        f"R16 full: {sent} msgs, stalled closed after {closed_after} s, "
        f"p50 {p50:.3f} p99 {p99:.3f}"
    )
    # Closing is immediate once a queue is full (test_units, Outbox); here the
    # clock starts with the first message, so it includes filling ~0.5 MB of kernel
    # buffer and the 1 MiB outbox of each stalled socket.
    assert closed_after, "stalled readers were not closed while messages flowed"
    assert closed_after[0] < 15
    assert p99 < 0.150
