"""A stand-in for the fan-out worker (issue 4), used only by the gateway tests.

It does what the seam in docs/design-notes.md says a worker does for live delivery
and nothing else: read each dispatch entry (XREAD, no consumer group) and its
message from the channel log, find the
recipients (person: both parties; otherwise the channel's members) and hand them to
``broker.gateway.delivery.DeliveryPublisher`` (connections grouped by node, one
``Delivery`` per node on ``jd:node:<id>``). Transient and command messages come from
the shard live channels.
"""

from __future__ import annotations

import anyio
import msgspec

from broker.channels import ChannelType, person_parties
from broker.gateway.delivery import DeliveryPublisher, Route
from broker.keys import Keys
from broker.protocol import LiveMessage, StoredMessage

_decode_message = msgspec.msgpack.Decoder(StoredMessage).decode
_decode_live = msgspec.msgpack.Decoder(LiveMessage).decode


class FanoutHelper:
    def __init__(
        self, redis, keys: Keys, heartbeat_ms: int = 2000, *, static: bool = False
    ) -> None:
        # static: the connections do not change during the test, so their lookup
        # is cached (a load test measures the gateway, not this stand-in).
        self.static = static
        self._routes: dict[tuple[str, ...], Route] = {}
        self.redis = redis
        self.keys = keys
        self.publisher = DeliveryPublisher(redis, keys, heartbeat_ms)
        self.cursor = dict.fromkeys(range(keys.shards), "0-0")
        self.published = 0

    async def recipients(self, message: StoredMessage) -> list[str]:
        if message.channel_type == ChannelType.PERSON:
            return list(person_parties(message.channel_id))
        members = await self.redis.smembers(
            self.keys.channel(message.channel_type, message.channel_id).members
        )
        return sorted(m.decode() for m in members)

    async def deliver(
        self, seq: int, message: StoredMessage, origin: str, uids=None
    ) -> None:
        uids = uids if uids is not None else await self.recipients(message)
        route = self._routes.get(tuple(uids)) if self.static else None
        if route is None:
            route = self._routes[tuple(uids)] = await self.publisher.route(uids)
        self.published += await self.publisher.send(route, seq, message, origin)

    async def pump(self, block_ms: int | None = None) -> int:
        """Deliver dispatch entries not yet seen (one XREAD over all shards)."""
        streams = {self.keys.dispatch(shard): c for shard, c in self.cursor.items()}
        reply = await self.redis.xread(streams, count=1000, block=block_ms)
        count = 0
        for stream, entries in reply or []:
            shard = int(stream.decode().split("{s", 1)[1].split("}", 1)[0])
            for entry_id, fields in entries:
                self.cursor[shard] = entry_id.decode()
                # The entry names the message; its body is in the channel log.
                seq = int(fields[b"s"])
                log = self.keys.channel(int(fields[b"t"]), fields[b"c"].decode()).log
                found = await self.redis.xrange(log, f"{seq}-0", f"{seq}-0")
                if found:
                    message = _decode_message(found[0][1][b"m"])
                    await self.deliver(seq, message, fields[b"o"].decode())
                count += 1
        return count

    async def _live(self, pubsub) -> None:
        while True:
            msg = await pubsub.get_message(timeout=1.0)
            if msg is not None and msg["type"] in ("message", b"message"):
                live = _decode_live(msg["data"])
                await self.deliver(0, live.message, live.origin_conn, live.to_uids)

    async def run(self, *, task_status=anyio.TASK_STATUS_IGNORED) -> None:
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(*(self.keys.live(s) for s in range(self.keys.shards)))
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._live, pubsub)
                task_status.started()
                while True:
                    await self.pump(block_ms=100)
        finally:
            with anyio.CancelScope(shield=True):
                await pubsub.aclose()
