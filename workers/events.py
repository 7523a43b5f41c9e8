"""Webhook events the fan-out queues in the outbox (reference §8).

Ids are deterministic (``n-<message_id>``, ``o-<message_id>``) so that a redelivered
dispatch entry queues the same event id and the receiver de-duplicates.
"""

from __future__ import annotations

import msgspec

from broker.protocol import MessageResp, StoredMessage
from broker.views import message_resp

MSG_NOTIFY = "msg.notify"
MSG_OFFLINE = "msg.offline"

_encode = msgspec.json.Encoder().encode


class OfflineEvent(MessageResp, frozen=True, kw_only=True):
    """v2 ``msg.offline``: the MessageResp fields plus the offline receivers."""

    to_uids: list[str]


def notify_id(message: StoredMessage) -> str:
    return f"n-{message.message_id}"


def offline_id(message: StoredMessage) -> str:
    return f"o-{message.message_id}"


def notify_body(seq: int, message: StoredMessage) -> bytes:
    """One MessageResp; the webhook sender batches them into v2's JSON array."""
    return _encode(message_resp(seq, message))


def offline_body(seq: int, message: StoredMessage, to_uids: list[str]) -> bytes:
    resp = message_resp(seq, message)
    fields = msgspec.structs.asdict(resp)
    return _encode(OfflineEvent(**fields, to_uids=to_uids))
