import base64


def b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode()


def send_body(channel_id="g1", channel_type=2, payload="hello", **extra):
    return {
        "channel_id": channel_id,
        "channel_type": channel_type,
        "payload": b64(payload),
        **extra,
    }
