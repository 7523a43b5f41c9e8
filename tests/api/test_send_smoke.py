import base64


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def test_send_then_sync(api):
    status, body = await api.post(
        "/message/send",
        {
            "from_uid": "alice",
            "channel_id": "bob",
            "channel_type": 1,
            "payload": b64("hi"),
        },
    )
    assert status == 200, body
    assert body["data"]["message_seq"] == 1
    status, body = await api.post(
        "/channel/messagesync",
        {"login_uid": "bob", "channel_id": "alice", "channel_type": 1, "limit": 10},
    )
    assert status == 200, body
    assert [m["message_seq"] for m in body["messages"]] == [1]
    assert body["messages"][0]["channel_id"] == "bob"
