"""Reading stored messages: channel sync and lookups (reference §3, DESIGN §6)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from broker.channels import InvalidId, check_channel_type, storage_channel_id
from broker.errors import ApiError, bad_request
from broker.keys import ChannelKeys, Keys, client_msg_no_field, id_field
from broker.protocol import (
    EncodedSyncResponse,
    MessageResp,
    MessagesRequest,
    MessagesResponse,
    MessageSyncRequest,
    MessageSyncResponse,
)
from broker.store import RawEntry, Store, decode_entries, decode_message
from broker.sync import MAX_SYNC_LIMIT, PULL_UP, SeqWindow, has_more, select_window
from broker.views import message_resp

MAX_LOOKUPS = 1_000

_json_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class SyncPage:
    """What a messagesync request selected, before it is shaped into an answer."""

    more: int = 0
    entries: Sequence[RawEntry] = ()
    epoch: str = ""
    first_kept: int = 0


class EncodedMessages:
    """The JSON of stored messages as v2 MessageResp, kept for reuse.

    The JSON is a pure function of the entry's seq and its stored bytes, so a
    cached answer is never stale (a deleted and recreated channel stores other
    bytes). Many readers of a hot channel then pay one dict lookup per message
    instead of decode, conversion and encode. Bounded by bytes; when full it starts
    over, which costs one re-encoding of the hot messages.
    """

    def __init__(self, max_bytes: int = 16 << 20) -> None:
        self._max_bytes = max_bytes
        self._bytes = 0
        self._cache: dict[tuple[int, bytes], msgspec.Raw] = {}

    def __call__(self, entry: RawEntry) -> msgspec.Raw:
        key = (entry.seq, entry.data)
        found = self._cache.get(key)
        if found is None:
            encoded = _json_encode(message_resp(entry.seq, decode_message(entry.data)))
            found = msgspec.Raw(encoded)
            size = len(entry.data) + len(encoded)
            if self._bytes + size > self._max_bytes:
                self._cache.clear()
                self._bytes = 0
            self._cache[key] = found
            self._bytes += size
        return found


def not_found(what: str = "message") -> ApiError:
    return ApiError(404, f"{what} not found")


class HistoryService:
    def __init__(self, store: Store, keys: Keys) -> None:
        self.store = store
        self.keys = keys
        self._encoded = EncodedMessages()

    def channel(
        self, channel_id: str, channel_type: int, viewer_uid: str
    ) -> ChannelKeys:
        """Keys of the channel a request names; bad ids or types give a 400."""
        try:
            check_channel_type(channel_type)
            stored = storage_channel_id(channel_id, channel_type, viewer_uid)
        except InvalidId as exc:
            raise bad_request(str(exc)) from None
        return self.keys.channel(channel_type, stored)

    async def sync(self, req: MessageSyncRequest) -> MessageSyncResponse:
        page = await self._sync_page(req)
        entries = decode_entries(page.entries)
        return MessageSyncResponse(
            start_message_seq=req.start_message_seq,
            end_message_seq=req.end_message_seq,
            more=page.more,
            messages=[message_resp(e.seq, e.message) for e in entries],
            epoch=page.epoch,
            truncated=page.first_kept > 0,
            first_message_seq=page.first_kept,
        )

    async def sync_encoded(self, req: MessageSyncRequest) -> EncodedSyncResponse:
        """:meth:`sync` with each message's JSON from :class:`EncodedMessages`."""
        page = await self._sync_page(req)
        encoded = self._encoded
        return EncodedSyncResponse(
            start_message_seq=req.start_message_seq,
            end_message_seq=req.end_message_seq,
            more=page.more,
            messages=[encoded(e) for e in page.entries],
            epoch=page.epoch,
            truncated=page.first_kept > 0,
            first_message_seq=page.first_kept,
        )

    async def _sync_page(self, req: MessageSyncRequest) -> SyncPage:
        if not req.login_uid:
            raise bad_request("login_uid must not be empty")
        if min(req.start_message_seq, req.end_message_seq, req.limit) < 0:
            raise bad_request(
                "start_message_seq, end_message_seq and limit must be >= 0"
            )
        if req.pull_mode not in (0, 1):
            raise bad_request("pull_mode must be 0 (down) or 1 (up)")
        channel = self.channel(req.channel_id, req.channel_type, req.login_uid)
        limit = min(req.limit, MAX_SYNC_LIMIT)
        head = await self.store.head(channel)
        if head.last_seq == 0:
            return SyncPage()
        window = select_window(
            req.start_message_seq,
            req.end_message_seq,
            limit,
            req.pull_mode,
            head.last_seq,
        )
        entries = await self._read(
            channel,
            window,
            newest=req.pull_mode != PULL_UP
            or (req.start_message_seq == 0 and req.end_message_seq == 0),
        )
        first_kept = await self._first_kept_if_cut(channel, window, entries)
        return SyncPage(
            more=has_more(len(entries), window, limit),
            entries=entries,
            epoch=head.epoch,
            first_kept=first_kept,
        )

    async def _read(
        self, channel: ChannelKeys, window: SeqWindow, *, newest: bool
    ) -> list[RawEntry]:
        if window.empty:
            return []
        if newest:
            return await self.store.read_newest_raw(
                channel, window.first, window.last, window.limit
            )
        return await self.store.read_range_raw(
            channel, window.first, window.last, window.limit
        )

    async def _first_kept_if_cut(
        self, channel: ChannelKeys, window: SeqWindow, entries: list[RawEntry]
    ) -> int:
        """The first kept seq when retention removed part of the window, else 0.

        Seqs are dense, so a short page, or a page that starts after the window's
        first seq, means entries are missing: never a silent gap.
        """
        if window.empty:
            return 0
        expected = min(window.limit, window.last - window.first + 1)
        starts_late = bool(entries) and entries[0].seq > window.first
        if len(entries) >= expected and not starts_late:
            return 0
        first_kept = await self.store.first_seq(channel)
        return first_kept if first_kept > window.first or first_kept == 0 else 0

    async def max_seq(self, channel_id: str, channel_type: int, login_uid: str) -> int:
        head = await self.store.head(self.channel(channel_id, channel_type, login_uid))
        return head.last_seq

    async def last_message(
        self, channel_id: str, channel_type: int, login_uid: str
    ) -> MessageResp:
        channel = self.channel(channel_id, channel_type, login_uid)
        head = await self.store.head(channel)
        entries = await self.store.read_newest(channel, 1, head.last_seq, 1)
        if not entries:
            raise not_found()
        return message_resp(entries[0].seq, entries[0].message)

    async def lookup(self, req: MessagesRequest) -> MessagesResponse:
        """Union of lookups by seq, message id and client_msg_no, ascending by seq."""
        total = len(req.message_seqs) + len(req.message_ids) + len(req.client_msg_nos)
        if total > MAX_LOOKUPS:
            raise bad_request(f"at most {MAX_LOOKUPS} lookups per request")
        channel = self.channel(req.channel_id, req.channel_type, req.login_uid)
        seqs = set(req.message_seqs)
        ids, cmns = set(req.message_ids), set(req.client_msg_nos)
        fields = [id_field(i) for i in ids] + [client_msg_no_field(c) for c in cmns]
        found = await self.store.scripts.index_find(channel=channel, fields=fields)
        entries = await self.store.read_seqs(channel, seqs.union(found))
        # Index fields are hashes: keep only entries that are what was asked for.
        kept = [
            e
            for e in entries
            if e.seq in seqs
            or e.message.message_id in ids
            or e.message.client_msg_no in cmns
        ]
        return MessagesResponse(messages=[message_resp(e.seq, e.message) for e in kept])

    async def find(
        self,
        channel_id: str,
        channel_type: int,
        login_uid: str,
        *,
        message_id: int = 0,
        client_msg_no: str = "",
    ) -> MessageResp:
        if not message_id and not client_msg_no:
            raise bad_request("message_id or client_msg_no is required")
        channel = self.channel(channel_id, channel_type, login_uid)
        if message_id:
            field = id_field(message_id)
        else:
            field = client_msg_no_field(client_msg_no)
        found = await self.store.scripts.index_find(channel=channel, fields=[field])
        for entry in await self.store.read_seqs(channel, found):
            message = entry.message
            if (message_id and message.message_id == message_id) or (
                not message_id and message.client_msg_no == client_msg_no
            ):
                return message_resp(entry.seq, message)
        raise not_found()
