"""Concurrent appends share pipelines, keep seqs dense, and survive a script flush."""

import asyncio

from broker.keys import Keys
from broker.messages import payload_digest
from broker.protocol import StoredMessage
from broker.redis_conn import connect
from broker.redis_server import RedisProcess
from broker.scripts import AppendStatus
from broker.store import Store


def message(n, channel="g1"):
    return StoredMessage(
        message_id=1000 + n,
        client_msg_no=f"c{n}",
        from_uid=f"u{n % 3}",
        channel_id=channel,
        channel_type=2,
        timestamp_ms=1,
        payload=b"hello %d" % n,
    )


async def append(store, msg):
    return await store.append(
        msg, dedupe_ttl=60, digest=payload_digest(msg.payload), new_epoch="e1"
    )


async def test_concurrent_appends_get_dense_seqs_and_dedupe(redis, settings):
    store = Store(redis, Keys(prefix=settings.key_prefix, shards=settings.shards))
    outcomes = await asyncio.gather(*(append(store, message(n)) for n in range(50)))
    assert all(o.status is AppendStatus.STORED for o in outcomes)
    assert sorted(o.seq for o in outcomes) == list(range(1, 51))
    # A retry inside a later burst is answered with the first result.
    again = await asyncio.gather(append(store, message(7)), append(store, message(50)))
    assert again[0].status is AppendStatus.DUPLICATE
    assert again[0].seq == outcomes[7].seq
    assert again[1].seq == 51


async def test_appends_reload_the_script_after_script_flush(tmp_path):
    # A private server: SCRIPT FLUSH must not touch the suite's shared one.
    server = RedisProcess(tmp_path, appendonly=False).start()
    client = connect(server.url)
    try:
        store = Store(client, Keys(prefix="t:", shards=4))
        assert (await append(store, message(1))).seq == 1
        await client.script_flush()
        outcomes = await asyncio.gather(*(append(store, message(n)) for n in (2, 3)))
        assert sorted(o.seq for o in outcomes) == [2, 3]
        assert await client.xlen(store.keys.channel(2, "g1").log) == 3
    finally:
        await client.aclose()
        server.stop()


async def test_concurrent_reads_share_pipelines_and_stay_correct(redis, settings):
    store = Store(redis, Keys(prefix=settings.key_prefix, shards=settings.shards))
    for n in range(30):
        await append(store, message(n, channel="g2"))
    channel = store.keys.channel(2, "g2")
    heads, ranges, newest = await asyncio.gather(
        asyncio.gather(*(store.head(channel) for _ in range(5))),
        asyncio.gather(*(store.read_range(channel, s, s + 9, 10) for s in (1, 11, 21))),
        store.read_newest(channel, 1, 30, 5),
    )
    assert {h.last_seq for h in heads} == {30}
    assert [[e.seq for e in r] for r in ranges] == [
        list(range(1, 11)),
        list(range(11, 21)),
        list(range(21, 31)),
    ]
    assert [e.seq for e in newest] == [26, 27, 28, 29, 30]
    assert await store.first_seq(channel) == 1
    missing = store.keys.channel(2, "nothing")
    assert (await store.head(missing)).last_seq == 0
    assert await store.read_range(missing, 1, 10, 10) == []
