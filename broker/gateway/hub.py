"""The connections held by this node, and fan-out to them.

Fan-out never awaits a client: each frame goes into the connection's bounded
outbox (``Session.push``); a full outbox disconnects that client only.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from broker.gateway import frames
from broker.gateway.control import Kick, kick_matches
from broker.gateway.views import RecvViews
from broker.metrics import DELIVERIES
from broker.protocol import Delivery


class Connection(Protocol):
    conn_id: str
    uid: str
    device_flag: int
    device_level: int
    device_id: str

    def push(self, frame: bytes) -> None: ...

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
        pushed = 0
        for uid in dict.fromkeys(delivery.uids):
            for conn in list(self.by_uid.get(uid, {}).values()):
                if conn.conn_id == delivery.origin_conn:
                    continue  # the sender's connection got the send result
                conn.push_recv(message_id, views.frame_for(uid), persisted=persisted)
                pushed += 1
        DELIVERIES.inc(pushed)
        return pushed

    def kick(self, kick: Kick) -> int:
        notice = frames.notification(
            "disconnect",
            frames.DisconnectNotice(reasonCode=kick.reason_code, reason=kick.reason),
        )
        kicked = 0
        for conn in list(self.by_uid.get(kick.uid, {}).values()):
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
        for conn in self.connections():
            conn.push(frame)
