"""Every Redis key name (DESIGN §3). Pure: no I/O.

Channel-scoped keys carry the hash tag ``{s<shard>}`` so that one script touches
one Cluster slot; user-scoped keys carry ``{u:<uid>}``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from broker.channels import shard_of

# Lookup index buckets (lua/index.lua): epoch k holds seqs [M*2^k, M*2^(k+1)) (epoch
# 0: [1, 2M)) in 2^k small hashes, about M messages (2M fields) each, so every
# bucket stays below Redis's 128-entry limit of the compact (listpack) encoding.
INDEX_BUCKET_MESSAGES = 32


@dataclass(frozen=True, slots=True)
class ChannelKeys:
    """The keys of one channel, all in the slot of ``{s<shard>}``."""

    base: str
    shard: int
    channel_type: int = 0
    channel_id: str = ""  # storage id: the fake id for person channels

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
        """Prefix of the lookup index buckets ``<index>:<epoch>:<bucket>``: small
        hashes of :func:`index_field` → seq (see lua/index.lua)."""
        return f"{self.base}:ix"

    def index_bucket(self, epoch: int, bucket: int) -> str:
        """One bucket hash (the scripts build the same name in Lua)."""
        return f"{self.base}:ix:{epoch}:{bucket}"


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "jd:"
    shards: int = 128

    def shard(self, channel_type: int, channel_id: str) -> int:
        return shard_of(channel_type, channel_id, self.shards)

    def channel(self, channel_type: int, channel_id: str) -> ChannelKeys:
        shard = self.shard(channel_type, channel_id)
        return ChannelKeys(
            f"{self.prefix}{{s{shard}}}:ch:{channel_type}:{channel_id}",
            shard,
            channel_type,
            channel_id,
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
    def presence_changes(self) -> str:
        """Stream of uids whose connections changed (field ``u``): workers drop
        those uids from their presence caches (docs/design-notes.md)."""
        return f"{self.prefix}presence:changes"

    @property
    def workers(self) -> str:
        return f"{self.prefix}workers"

    def node_channel(self, node_id: str) -> str:
        return f"{self.prefix}node:{node_id}"

    @property
    def gateway_control(self) -> str:
        """Pub/sub channel every api node listens on for control frames (kicks)."""
        return f"{self.prefix}gw:control"

    @property
    def gateway_kicks(self) -> str:
        """Capped stream of every kick published (field ``k``): a node that lost its
        subscription replays the ones it may have missed (gateway/control.py)."""
        return f"{self.prefix}gw:kicks"

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


@dataclass(frozen=True, slots=True)
class IndexField:
    """One lookup-index field: 8 bytes of a hash of what is looked up, and the
    32-bit number that picks its bucket. A hash may collide, so readers check the
    log entry it points at (message id / client_msg_no) before trusting it."""

    field: bytes
    bucket_hash: int


# The hash of ``kind + value``: a copy of a hasher that has seen ``kind`` already
# gives the same digest without the constructor's argument parsing (two per send).
_ID_HASH = hashlib.blake2b(b"i", digest_size=12)
_CLIENT_MSG_NO_HASH = hashlib.blake2b(b"c", digest_size=12)


def _index_digest(seeded: hashlib.blake2b, value: bytes) -> bytes:
    hasher = seeded.copy()
    hasher.update(value)
    return hasher.digest()


def id_digest(message_id: int) -> bytes:
    """12 bytes: the field (first 8) and bucket hash (last 4) of :func:`id_field`."""
    return _index_digest(_ID_HASH, b"%d" % message_id)


def client_msg_no_digest(client_msg_no: str) -> bytes:
    return _index_digest(_CLIENT_MSG_NO_HASH, client_msg_no.encode())


def _index_field(digest: bytes) -> IndexField:
    return IndexField(digest[:8], int.from_bytes(digest[8:], "big"))


def id_field(message_id: int) -> IndexField:
    return _index_field(id_digest(message_id))


def client_msg_no_field(client_msg_no: str) -> IndexField:
    return _index_field(client_msg_no_digest(client_msg_no))


def index_epoch(seq: int) -> int:
    """The index epoch of ``seq`` (lua/index.lua ``ix_epoch``)."""
    return max((seq // INDEX_BUCKET_MESSAGES).bit_length() - 1, 0)
