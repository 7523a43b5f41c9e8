"""R17 retention vs sync, and R6 Redis data loss → a new channel epoch."""

from __future__ import annotations

import base64
import shutil

import anyio
import pytest
from aiohttp.test_utils import TestClient, TestServer

from broker.http.app import create_app
from broker.redis_conn import connect, keys_for
from tests.conftest import MANAGER_TOKEN, ApiClient
from tests.faults.conftest import settings_for
from tests.faults.ledger import OK, Ledger, check


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def send_many(
    api: ApiClient,
    channel_id: str,
    count: int,
    *,
    start: int = 0,
    ledger: Ledger | None = None,
    from_uid: str = "alice",
) -> None:
    """``count`` group messages, 50 in flight at a time."""

    async def one(n: int) -> None:
        cmn = f"{channel_id}-{n}"
        op = ledger.invoke(2, channel_id, from_uid, cmn) if ledger else None
        status, body = await api.post(
            "/message/send",
            {
                "header": {"red_dot": 1},
                "from_uid": from_uid,
                "channel_id": channel_id,
                "channel_type": 2,
                "client_msg_no": cmn,
                "payload": b64(f"m{n}"),
            },
        )
        assert status == 200, body
        if ledger is not None and op is not None:
            data = body["data"]
            ledger.complete(
                op, OK, seq=data["message_seq"], message_id=data["message_id"]
            )

    for first in range(start, start + count, 50):
        async with anyio.create_task_group() as tg:
            for n in range(first, min(first + 50, start + count)):
                tg.start_soon(one, n)


async def sync(api: ApiClient, channel_id: str, start: int, limit: int = 100, **more):
    status, body = await api.post(
        "/channel/messagesync",
        {
            "login_uid": "alice",
            "channel_id": channel_id,
            "channel_type": 2,
            "start_message_seq": start,
            "end_message_seq": 0,
            "limit": limit,
            "pull_mode": 1,
            **more,
        },
    )
    assert status == 200, body
    return body


async def retention_case(settings, keep: int, total: int) -> None:
    async with TestClient(TestServer(create_app(settings))) as client:
        api = ApiClient(client, MANAGER_TOKEN)
        await send_many(api, "ret", total)
        first_kept = total - keep + 1

        # A client far behind: told that messages were cut, and from where.
        body = await sync(api, "ret", 100)
        assert body["truncated"] is True
        assert body["first_message_seq"] == first_kept
        seqs = [m["message_seq"] for m in body["messages"]]
        assert seqs == list(range(first_kept, first_kept + 100))

        # A client inside the kept range: an exact catch-up, paging to the end.
        position = total - keep // 2
        got: list[int] = []
        while True:
            body = await sync(api, "ret", position + 1)
            assert body["truncated"] is False
            page = [m["message_seq"] for m in body["messages"]]
            got += page
            if not body["more"] or not page:
                break
            position = page[-1]
        assert got == list(range(total - keep // 2 + 1, total + 1))

        # The newest page (start 0) is never reported as cut.
        body = await sync(api, "ret", 0, limit=20)
        assert body["truncated"] is False
        assert [m["message_seq"] for m in body["messages"]][-1] == total

        # The log holds exactly `keep` entries; seqs stay dense after the cut.
        redis = connect(settings.redis_url)
        try:
            log = keys_for(settings).channel(2, "ret").log
            assert await redis.xlen(log) == keep
        finally:
            await redis.aclose()


async def test_retention_reports_truncated_never_a_silent_gap(aof_redis):
    await retention_case(settings_for(aof_redis, retention_maxlen=100), 100, 500)


@pytest.mark.slow
async def test_retention_full_figures(aof_redis):
    # The plan's figures: retention 1,000, 5,000 sent, a client at seq 100.
    await retention_case(settings_for(aof_redis, retention_maxlen=1000), 1000, 5000)


async def test_redis_data_loss_starts_a_new_epoch(aof_redis, procs):
    settings = settings_for(aof_redis)
    ledger = Ledger()
    channels = ["e1", "e2", "e3"]
    async with TestClient(TestServer(create_app(settings))) as client:
        api = ApiClient(client, MANAGER_TOKEN)
        for ch in channels:
            await send_many(api, ch, 120, ledger=ledger)
        before = {ch: await sync(api, ch, 0, limit=1) for ch in channels}
        old_epochs = {ch: body["epoch"] for ch, body in before.items()}
        assert all(old_epochs.values())
        admin = connect(settings.redis_url)
        try:
            report, _ = await check(admin, keys_for(settings), ledger)
        finally:
            await admin.aclose()
        assert report.clean, report.summary()

        # Lose everything: crash Redis and delete its AOF, as a lost disk would.
        aof_redis.kill()
        shutil.rmtree(aof_redis.data_dir)
        aof_redis.start()

        # New messages in two of the three channels, sent through the same api.
        for ch in channels[:2]:
            await send_many(api, ch, 10, start=1000)
        for ch in channels[:2]:
            # A client resuming from its old position learns of the reset...
            body = await sync(api, ch, 121)
            assert body["epoch"] not in ("", old_epochs[ch])
            assert body["messages"] == []
            # ...and its full resync holds only the new epoch's messages, from 1.
            body = await sync(api, ch, 1)
            assert [m["message_seq"] for m in body["messages"]] == list(range(1, 11))
            assert {m["client_msg_no"] for m in body["messages"]} == {
                f"{ch}-{n}" for n in range(1000, 1010)
            }
        # A channel with nothing new: no old data, and no old epoch either.
        body = await sync(api, channels[2], 1)
        assert body["messages"] == []
        assert body["epoch"] != old_epochs[channels[2]]
