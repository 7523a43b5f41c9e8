"""Every Redis key name (DESIGN §3). Pure: no I/O.

Channel-scoped keys carry the hash tag ``{s<shard>}`` so that one script touches
one Cluster slot; user-scoped keys carry ``{u:<uid>}``.
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.channels import shard_of


@dataclass(frozen=True, slots=True)
class ChannelKeys:
    """The keys of one channel, all in the slot of ``{s<shard>}``."""

    base: str
    shard: int

    @property
    def log(self) -> str:
        return f"{self.base}:log"

    @property
    def meta(self) -> str:
        return f"{self.base}:meta"

    @property
    def members(self) -> str:
        return f"{self.base}:members"

    @property
    def blacklist(self) -> str:
        return f"{self.base}:deny"

    @property
    def whitelist(self) -> str:
        return f"{self.base}:allow"

    @property
    def badge(self) -> str:
        """Bitmap: bit ``seq`` is set when message ``seq`` raises unread (red_dot)."""
        return f"{self.base}:badge"

    @property
    def index(self) -> str:
        """Hash: ``i<message_id>`` and ``c<client_msg_no>`` → seq, for lookups."""
        return f"{self.base}:ix"


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "jd:"
    shards: int = 128

    def shard(self, channel_type: int, channel_id: str) -> int:
        return shard_of(channel_type, channel_id, self.shards)

    def channel(self, channel_type: int, channel_id: str) -> ChannelKeys:
        shard = self.shard(channel_type, channel_id)
        return ChannelKeys(
            f"{self.prefix}{{s{shard}}}:ch:{channel_type}:{channel_id}", shard
        )

    def dedupe(
        self, channel_type: int, channel_id: str, from_uid: str, client_msg_no: str
    ) -> str:
        # The uid's length makes the key unambiguous although ids may contain ':'.
        shard = self.shard(channel_type, channel_id)
        return (
            f"{self.prefix}{{s{shard}}}:dd:{channel_type}:{channel_id}:"
            f"{len(from_uid)}:{from_uid}:{client_msg_no}"
        )

    def dispatch(self, shard: int) -> str:
        return f"{self.prefix}{{s{shard}}}:dispatch"

    def lease(self, shard: int) -> str:
        return f"{self.prefix}{{s{shard}}}:lease"

    def live(self, shard: int) -> str:
        """Pub/sub channel for transient and command messages of a shard."""
        return f"{self.prefix}live:{{s{shard}}}"

    # -- user scoped ------------------------------------------------------------
    def user(self, uid: str) -> str:
        return f"{self.prefix}{{u:{uid}}}"

    def conversations(self, uid: str) -> str:
        return f"{self.user(uid)}:conv"

    def recent(self, uid: str) -> str:
        return f"{self.user(uid)}:recent"

    def connections(self, uid: str) -> str:
        return f"{self.user(uid)}:conns"

    def tokens(self, uid: str) -> str:
        return f"{self.user(uid)}:tok"

    # -- global -----------------------------------------------------------------
    @property
    def config(self) -> str:
        """Hash of deployment-wide facts fixed at first start (shard count)."""
        return f"{self.prefix}config"

    @property
    def nodes(self) -> str:
        return f"{self.prefix}nodes"

    @property
    def node_connections(self) -> str:
        """Hash: node id → its number of WebSocket connections (at its heartbeat)."""
        return f"{self.prefix}nodes:conns"

    @property
    def workers(self) -> str:
        return f"{self.prefix}workers"

    def node_channel(self, node_id: str) -> str:
        return f"{self.prefix}node:{node_id}"

    @property
    def gateway_control(self) -> str:
        """Pub/sub channel every api node listens on for control frames (kicks)."""
        return f"{self.prefix}gw:control"

    def snowflake_node(self, node: int) -> str:
        return f"{self.prefix}snowflake:{node}"

    # Webhook keys share the hash tag {webhook}: the sender's scripts touch several.
    @property
    def webhook_outbox(self) -> str:
        """Stream of webhook events waiting to be POSTed (fields id, e, d)."""
        return f"{self.prefix}{{webhook}}:outbox"

    @property
    def webhook_dead(self) -> str:
        """Stream of dead-lettered deliveries (fields id, e, d, err, n)."""
        return f"{self.prefix}{{webhook}}:dead"

    @property
    def webhook_jobs(self) -> str:
        """Hash: delivery id → encoded job (event, body) waiting to be POSTed."""
        return f"{self.prefix}{{webhook}}:jobs"

    @property
    def webhook_due(self) -> str:
        """Zset: delivery id → ms when it is due (or when its in-flight lease ends)."""
        return f"{self.prefix}{{webhook}}:due"

    @property
    def webhook_attempts(self) -> str:
        """Hash: delivery id → attempts started so far."""
        return f"{self.prefix}{{webhook}}:attempts"

    def webhook_seen(self, event_id: str) -> str:
        """Marker that an outbox event id was already queued (duplicate window)."""
        return f"{self.prefix}{{webhook}}:seen:{event_id}"

    @property
    def system_uids(self) -> str:
        return f"{self.prefix}systemuids"
