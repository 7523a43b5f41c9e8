"""An append batch whose connection breaks after Redis ran it is not stored twice.

A small TCP proxy between the client and a real redis-server drops the reply of
one batch: Redis has stored the messages, the client sees a broken connection and
sends the batch again. The retry must find each message by its client_msg_no,
also when the server made it (the first try skips that lookup)."""

import asyncio
from urllib.parse import urlparse

from broker.keys import Keys
from broker.messages import payload_digest
from broker.protocol import StoredMessage
from broker.redis_conn import connect
from broker.scripts import AppendStatus
from broker.store import Store


class ReplyDroppingProxy:
    """Forwards to Redis; with ``drop_next_reply`` set, the next data Redis sends
    back is not forwarded and both connections are closed instead."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.drop_next_reply = False
        self.dropped = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, client_r, client_w) -> None:
        redis_r, redis_w = await asyncio.open_connection(*self.target)

        async def upstream() -> None:
            while data := await client_r.read(65536):
                redis_w.write(data)
                await redis_w.drain()

        async def downstream() -> None:
            while data := await redis_r.read(65536):
                if self.drop_next_reply:
                    self.drop_next_reply = False
                    self.dropped += 1
                    break
                client_w.write(data)
                await client_w.drain()

        tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        for writer in (client_w, redis_w):
            writer.close()

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


def message(n: int, cmn: str) -> StoredMessage:
    return StoredMessage(
        message_id=1000 + n,
        client_msg_no=cmn,
        from_uid="alice",
        channel_id="retry-group",
        channel_type=2,
        timestamp_ms=1_000_000 + n,
        payload=b"payload %d" % n,
    )


async def append(store: Store, msg: StoredMessage, *, made: bool):
    return await store.append(
        msg,
        dedupe_ttl=60,
        digest=payload_digest(msg.payload),
        new_epoch="e1",
        made_client_msg_no=made,
    )


async def test_a_batch_whose_reply_was_lost_is_answered_not_stored_twice(
    redis, settings
):
    target = urlparse(settings.redis_url)
    proxy = ReplyDroppingProxy(target.hostname or "127.0.0.1", target.port or 6379)
    port = await proxy.start()
    through_proxy = connect(f"redis://127.0.0.1:{port}")
    store = Store(
        through_proxy, Keys(prefix=settings.key_prefix, shards=settings.shards)
    )
    try:
        first = await append(store, message(1, "made-1"), made=True)
        assert (first.status, first.seq) == (AppendStatus.STORED, 1)
        for n, made in ((2, True), (3, False)):  # server-made, then client-given
            proxy.drop_next_reply = True
            outcome = await append(store, message(n, f"cmn-{n}"), made=made)
            assert proxy.dropped == n - 1  # the reply of the first try was lost
            # Redis stored it on the first try; the retry found it.
            assert outcome.status is AppendStatus.DUPLICATE
            assert (outcome.seq, outcome.message_id) == (n, 1000 + n)
        log = store.keys.channel(2, "retry-group").log
        assert await redis.xlen(log) == 3
    finally:
        await through_proxy.aclose()
        await proxy.close()
