"""The connections held by this node, and fan-out to them.

Fan-out never awaits a client: each frame is written to the connection's socket,
or, if that is backed up, queued in its bounded outbox (``Session.push``); a full
outbox disconnects that client only. Frames reach connections ready-made
(``wire.text_frame``): a message is encoded once per view, not per recipient.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from broker.gateway import frames, wire
from broker.gateway.control import Kick, LogPosition, kick_matches
from broker.gateway.views import RecvViews
from broker.metrics import DELIVERIES
from broker.protocol import Delivery


class Connection(Protocol):
    conn_id: str
    uid: str
    device_flag: int
    device_level: int
    device_id: str
    # The kick log's position when it registered (control.py): a replayed kick
    # logged before that was not meant for it.
    kicks_seen: LogPosition

    def push(self, frame: bytes) -> None:
        """Write a ready WebSocket frame (``wire.text_frame``)."""

    def push_recv(self, message_id: str, frame: bytes, *, persisted: bool) -> None: ...

    def kick(self, notice: bytes) -> None: ...


class Hub:
    def __init__(self) -> None:
        self.by_uid: dict[str, dict[str, Connection]] = {}

    def __len__(self) -> int:
        return sum(len(conns) for conns in self.by_uid.values())

    def add(self, conn: Connection) -> None:
        self.by_uid.setdefault(conn.uid, {})[conn.conn_id] = conn

    def remove(self, conn: Connection) -> None:
        conns = self.by_uid.get(conn.uid)
        if conns is None:
            return
        conns.pop(conn.conn_id, None)
        if not conns:
            del self.by_uid[conn.uid]

    def connections(self) -> Iterator[Connection]:
        for conns in list(self.by_uid.values()):
            yield from list(conns.values())

    def deliver(self, delivery: Delivery) -> int:
        """Push one message to every local connection of its uids but the origin.

        Returns the number of connections it was pushed to.
        """
        views = RecvViews(delivery.seq, delivery.message)
        message_id = str(delivery.message.message_id)
        persisted = delivery.seq > 0
        origin = delivery.origin_conn
        by_uid = self.by_uid
        pushed = 0
        for uid in dict.fromkeys(delivery.uids):
            conns = by_uid.get(uid)
            if not conns:
                continue
            for conn in list(conns.values()):
                if conn.conn_id == origin:
                    continue  # the sender's connection got the send result
                conn.push_recv(message_id, views.wire_for(uid), persisted=persisted)
                pushed += 1
        DELIVERIES.inc(pushed)
        return pushed

    def kick(self, kick: Kick, logged_at: LogPosition | None = None) -> int:
        """Kick the connections ``kick`` matches; a replayed one (``logged_at``)
        only those that registered before it was logged."""
        notice = wire.text_frame(
            frames.notification(
                "disconnect",
                frames.DisconnectNotice(
                    reasonCode=kick.reason_code, reason=kick.reason
                ),
            )
        )
        kicked = 0
        for conn in list(self.by_uid.get(kick.uid, {}).values()):
            if logged_at is not None and conn.kicks_seen >= logged_at:
                continue
            if kick_matches(
                kick,
                conn_id=conn.conn_id,
                uid=conn.uid,
                device_flag=conn.device_flag,
                device_id=conn.device_id,
            ):
                conn.kick(notice)
                kicked += 1
        return kicked

    def broadcast(self, frame: bytes) -> None:
        """Write one JSON frame to every connection (framed once)."""
        ready = wire.text_frame(frame)
        for conn in self.connections():
            conn.push(ready)
