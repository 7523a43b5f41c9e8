"""The lookup index (lua/index.lua): small bucket hashes, lookups, dedupe window."""

from broker.history import HistoryService
from broker.keys import Keys, index_epoch
from broker.messages import payload_digest
from broker.protocol import MessagesRequest, StoredMessage
from broker.scripts import AppendStatus
from broker.store import NO_LOOKUP, Store

TTL = 60


def message(n, *, sender="alice", cmn="", ms=1_000_000, payload=b"", id_=0):
    return StoredMessage(
        message_id=id_ or 2**62 + n,  # above 2^53: ids must survive Lua exactly
        client_msg_no=cmn or f"cmn-{n}",
        from_uid=sender,
        channel_id="g1",
        channel_type=2,
        timestamp_ms=ms,
        payload=payload or b"p%d" % n,
    )


async def append(store, msg):
    return await store.append(
        msg, dedupe_ttl=TTL, digest=payload_digest(msg.payload), new_epoch="e1"
    )


def store_of(redis, settings):
    return Store(redis, Keys(prefix=settings.key_prefix, shards=settings.shards))


async def test_retry_inside_the_window_is_a_duplicate_and_after_it_is_new(
    redis, settings
):
    store = store_of(redis, settings)
    first = await append(store, message(1, cmn="x", ms=1_000_000))
    assert first.status is AppendStatus.STORED
    inside = await append(store, message(2, cmn="x", ms=1_000_000 + TTL * 1000))
    assert inside.status is AppendStatus.DUPLICATE
    assert (inside.seq, inside.message_id) == (first.seq, 2**62 + 1)
    # same client_msg_no, other payload: digest "" (the API answers 409)
    other = await append(store, message(3, cmn="x", payload=b"p1", ms=1_000_001))
    assert other.status is AppendStatus.DUPLICATE and other.digest
    changed = await append(store, message(4, cmn="x", payload=b"new", ms=1_000_001))
    assert changed.status is AppendStatus.DUPLICATE and changed.digest == ""
    # another sender may reuse it; so may the same sender once the window passed
    bob = await append(store, message(5, cmn="x", sender="bob", ms=1_000_002))
    assert (bob.status, bob.seq) == (AppendStatus.STORED, 2)
    late = await append(store, message(6, cmn="y", ms=1_000_000))
    again = await append(store, message(7, cmn="y", ms=1_000_001 + TTL * 1000))
    assert (late.status, again.status) == (AppendStatus.STORED, AppendStatus.STORED)


async def test_a_server_made_client_msg_no_skips_the_lookup_but_is_indexed(
    redis, settings
):
    store = store_of(redis, settings)
    first = await append(store, message(1, cmn="made"))
    # NO_LOOKUP: the same client_msg_no is not taken for a retry
    msg = message(2, cmn="made")
    second = await store.append(
        msg,
        dedupe_ttl=NO_LOOKUP,
        digest=payload_digest(msg.payload),
        new_epoch="e1",
    )
    assert (first.seq, second.status, second.seq) == (1, AppendStatus.STORED, 2)
    # ... and it is still indexed: the newest message with it is found
    retry = await append(store, message(3, cmn="made"))
    assert (retry.status, retry.seq) == (AppendStatus.DUPLICATE, 2)


async def test_buckets_stay_compact_and_every_message_is_found(redis, settings):
    store = store_of(redis, settings)
    count = 700
    for n in range(1, count + 1):
        assert (await append(store, message(n))).seq == n
    channel = store.keys.channel(2, "g1")
    top = index_epoch(count)
    buckets = [channel.index_bucket(k, b) for k in range(top + 1) for b in range(2**k)]
    encodings = {await redis.object("encoding", key) for key in buckets}
    assert encodings == {b"ziplist"} or encodings == {b"listpack"}
    history = HistoryService(store, store.keys)
    wanted = [1, 2, 63, 64, 65, 300, 699, 700]
    reply = await history.lookup(
        MessagesRequest(
            login_uid="alice",
            channel_id="g1",
            channel_type=2,
            message_ids=[2**62 + n for n in wanted[:4]] + [123],
            client_msg_nos=[f"cmn-{n}" for n in wanted[4:]] + ["nope"],
        )
    )
    assert [m.message_seq for m in reply.messages] == wanted
    found = await history.find("g1", 2, "alice", client_msg_no="cmn-333")
    assert found.message_seq == 333
    assert (await history.find("g1", 2, "alice", message_id=2**62 + 5)).message_seq == 5
    # deleting the channel removes every bucket
    assert await store.scripts.channel_delete(channel=channel) is not None
    assert await redis.exists(*buckets) == 0
