"""The HTTP messagesync answer (messages encoded once and reused) is the same JSON
as the MessageSyncResponse the gateway gets."""

import msgspec

from broker.history import EncodedMessages
from broker.http.context import SERVICES
from broker.protocol import MessageSyncRequest, StoredMessage
from broker.store import RawEntry
from tests.api.helpers import send_body


async def test_encoded_sync_equals_the_struct_answer(api):
    for i in range(3):
        extra = {"topic": "t"} if i == 1 else {}
        status, _ = await api.post(
            "/message/send", send_body("g9", payload=f"m{i}", **extra)
        )
        assert status == 200
    body = send_body("bob", channel_type=1, from_uid="alice")
    assert (await api.post("/message/send", body))[0] == 200
    history = api.app[SERVICES].history
    for req in (
        MessageSyncRequest(login_uid="x", channel_id="g9", channel_type=2, limit=10),
        MessageSyncRequest(login_uid="bob", channel_id="alice", channel_type=1),
        MessageSyncRequest(
            login_uid="x",
            channel_id="g9",
            channel_type=2,
            start_message_seq=2,
            limit=1,
            pull_mode=1,
        ),
    ):
        expected = msgspec.json.encode(await history.sync(req))
        for _ in range(2):  # the second answer comes from the cache
            assert msgspec.json.encode(await history.sync_encoded(req)) == expected
    status, page = await api.post(
        "/channel/messagesync",
        {"login_uid": "x", "channel_id": "g9", "channel_type": 2, "limit": 10},
    )
    assert status == 200
    assert [m["message_seq"] for m in page["messages"]] == [1, 2, 3]
    assert page["messages"][1]["topic"] == "t"
    assert "topic" not in page["messages"][0]


def test_encoded_messages_stay_within_their_byte_bound():
    encoded = EncodedMessages(max_bytes=2_000)
    for seq in range(1, 50):
        data = msgspec.msgpack.encode(
            StoredMessage(
                message_id=seq,
                client_msg_no="c",
                from_uid="u",
                channel_id="g",
                channel_type=2,
                timestamp_ms=1000,
                payload=b"x" * 100,
            )
        )
        first = encoded(RawEntry(seq, data))
        assert encoded(RawEntry(seq, data)) is first
        assert msgspec.json.decode(first)["message_seq"] == seq
        assert encoded._bytes <= 2_000
