"""``user.onlinestatus`` webhook events, produced when a connection comes or goes.

WuKongIM's body is a JSON array of ``uid-deviceFlag-online-connId-deviceOnlineCount-
totalOnlineCount`` strings (reference §8), counts taken after the change. Each event
goes to the durable webhook outbox (design-notes "Webhook outbox") with the id
``s-<conn_id>-<online>``; the webhook worker batches and delivers them.
"""

from __future__ import annotations

import msgspec

from broker.gateway.presence import Presence
from broker.settings import Settings
from broker.webhook_outbox import enqueue_event

EVENT = "user.onlinestatus"


def wants_status_events(settings: Settings) -> bool:
    """Only with a webhook receiver configured (and the event not filtered out):
    otherwise nobody would ever drain the outbox."""
    if not settings.webhook_url:
        return False
    wanted = {e.strip() for e in settings.webhook_events.split(",") if e.strip()}
    return not wanted or EVENT in wanted


def status_line(
    uid: str, device_flag: int, online: bool, conn_id: str, device: int, total: int
) -> str:
    return f"{uid}-{device_flag}-{int(online)}-{conn_id}-{device}-{total}"


async def enqueue_status(
    presence: Presence, uid: str, device_flag: int, conn_id: str, *, online: bool
) -> None:
    """Count the uid's live connections (after the change) and queue the event."""
    [(_, records)] = await presence.connections([uid])
    device = sum(1 for r in records if r.device_flag == device_flag)
    line = status_line(uid, device_flag, online, conn_id, device, len(records))
    await enqueue_event(
        presence.redis,
        presence.keys,
        f"s-{conn_id}-{int(online)}",
        EVENT,
        msgspec.json.encode([line]),
    )
