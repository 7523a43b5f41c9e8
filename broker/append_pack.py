"""The append script's EVALSHA command in RESP, built for the send path. Pure.

Byte for byte what ``redis_batch.pack("EVALSHA", sha, 8, *keys, *args)`` of
:func:`broker.scripts.append_call` gives, but the parts fixed per channel (the
command head with its eight keys, and the channel's type and id) are packed once
and kept: packing the ~27 arguments one by one was the largest Python cost of a
send after the HTTP server's own.
"""

from __future__ import annotations

from broker.keys import ChannelKeys, Keys, client_msg_no_digest, id_digest

# KEYS of lua/append.lua, in order; ARGV follows in append_call's order.
APPEND_KEYS = 8
APPEND_ARGS = 16
# A bound on the cached channels: past it the cache starts over (one dict, no LRU
# bookkeeping per send; a miss costs one pack of the channel's keys).
MAX_CACHED_CHANNELS = 4096


def bulk(data: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(data), data)


def bulk_int(value: int) -> bytes:
    return bulk(b"%d" % value)


def channel_keys(channel: ChannelKeys, dispatch: str) -> list[str]:
    """The append script's KEYS for ``channel``."""
    return [
        channel.meta,
        channel.log,
        channel.badge,
        channel.index,
        dispatch,
        channel.members,
        channel.blacklist,
        channel.whitelist,
    ]


_RED_DOT = (bulk(b"0"), bulk(b"1"))
_EMPTY = bulk(b"")
# head; message, red_dot, ttl, id field and bucket, client_msg_no field and bucket,
# digest, new_epoch, now_ms, origin_conn; channel type and id; from_uid, check_uid,
# retention (the ARGV of append_call; index fields are 8 bytes).
_PER_SEND = (
    b"%b$%d\r\n%b\r\n%b%b$8\r\n%b\r\n$%d\r\n%b\r\n$8\r\n%b\r\n$%d\r\n%b\r\n"
    b"$%d\r\n%b\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n%b%b$%d\r\n%b\r\n%b%b"
)


class AppendPacker:
    """Packs appends for one script sha, key layout and retention."""

    def __init__(self, sha: str, keys: Keys, retention: int) -> None:
        self.keys = keys
        self._command = (
            b"*%d\r\n" % (3 + APPEND_KEYS + APPEND_ARGS)
            + bulk(b"EVALSHA")
            + bulk(sha.encode())
            + bulk_int(APPEND_KEYS)
        )
        self._retention = bulk_int(retention)
        self._ttls: dict[int, bytes] = {}
        # (channel_type, channel_id) -> (head with KEYS, channel type and id args)
        self._channels: dict[tuple[int, str], tuple[bytes, bytes]] = {}

    def _channel(self, channel_type: int, channel_id: str) -> tuple[bytes, bytes]:
        found = self._channels.get((channel_type, channel_id))
        if found is not None:
            return found
        channel = self.keys.channel(channel_type, channel_id)
        keys = channel_keys(channel, self.keys.dispatch(channel.shard))
        head = self._command + b"".join(bulk(k.encode()) for k in keys)
        ident = bulk_int(channel_type) + bulk(channel_id.encode())
        if len(self._channels) >= MAX_CACHED_CHANNELS:
            self._channels.clear()
        found = self._channels[channel_type, channel_id] = (head, ident)
        return found

    def _ttl(self, dedupe_ttl: int) -> bytes:
        found = self._ttls.get(dedupe_ttl)
        if found is None:
            if len(self._ttls) > 16:  # set per process; a bound all the same
                self._ttls.clear()
            found = self._ttls[dedupe_ttl] = bulk_int(dedupe_ttl)
        return found

    def pack(
        self,
        *,
        channel_type: int,
        channel_id: str,
        message: bytes,
        red_dot: bool,
        dedupe_ttl: int,
        message_id: int,
        client_msg_no: str,
        from_uid: str,
        digest: str,
        new_epoch: str,
        now_ms: int,
        origin_conn: str = "",
        check_uid: str = "",
    ) -> bytes:
        head, ident = self._channel(channel_type, channel_id)
        by_id, by_cmn = id_digest(message_id), client_msg_no_digest(client_msg_no)
        id_bucket = b"%d" % int.from_bytes(by_id[8:], "big")
        cmn_bucket = b"%d" % int.from_bytes(by_cmn[8:], "big")
        digest_b, epoch_b, now_b = digest.encode(), new_epoch.encode(), b"%d" % now_ms
        from_b = from_uid.encode()
        # One format for the per-send arguments: a function call per argument and a
        # join cost more than the packing itself.
        return _PER_SEND % (
            head,
            len(message),
            message,
            _RED_DOT[1 if red_dot else 0],
            self._ttl(dedupe_ttl),
            by_id[:8],
            len(id_bucket),
            id_bucket,
            by_cmn[:8],
            len(cmn_bucket),
            cmn_bucket,
            len(digest_b),
            digest_b,
            len(epoch_b),
            epoch_b,
            len(now_b),
            now_b,
            bulk(origin_conn.encode()) if origin_conn else _EMPTY,
            ident,
            len(from_b),
            from_b,
            bulk(check_uid.encode()) if check_uid else _EMPTY,
            self._retention,
        )
