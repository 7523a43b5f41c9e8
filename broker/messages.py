"""The write path shared by the HTTP API and the WebSocket gateway (DESIGN §4)."""

from __future__ import annotations

import hashlib
import random
import re
import time
from collections import Counter

import msgspec

from broker.channels import (
    SYSTEM_UID,
    ChannelType,
    InvalidId,
    check_channel_type,
    check_id,
    person_channel_id,
)
from broker.errors import ApiError, Reason, bad_request, forbidden
from broker.metrics import count_sends, observe_send, record_send
from broker.protocol import (
    Header,
    LiveMessage,
    MessageKind,
    SendBatchRequest,
    SendBatchResponse,
    SendRequest,
    SendResult,
    StoredMessage,
)
from broker.scripts import AppendOutcome, AppendStatus
from broker.send_permissions import SendPermissions
from broker.settings import Settings
from broker.snowflake import Snowflake
from broker.store import Store

MAX_CLIENT_MSG_NO_BYTES = 128
_CONTROL_CHARS = re.compile(r"[\x00-\x1f]")
_random = random.Random()  # seeded from os.urandom once per process
CMD_SUFFIX = "____cmd"


class Sender(msgspec.Struct, frozen=True, kw_only=True):
    """Who sends: the uid, whether it is trusted (manager token), and from which
    connection (empty for HTTP). A Struct: one is made per send."""

    uid: str
    trusted: bool
    origin_conn: str = ""


def new_client_msg_no() -> str:
    """WuKongIM's server-made client_msg_no: 32 hex digits and a trailing "0"."""
    # Not a secret, only unique: random bits without a getrandom() call per send
    # (syscalls dominate the send path's CPU in sandboxed hosts; see BENCHMARKS.md).
    return f"{_random.getrandbits(128):032x}0"


def new_epoch() -> str:
    """A fresh channel epoch (used only when a channel's meta is created)."""
    return f"{_random.getrandbits(64):016x}"


_BLAKE2B_8 = hashlib.blake2b(digest_size=8)


def payload_digest(payload: bytes) -> str:
    digest = _BLAKE2B_8.copy()  # cheaper than parsing the constructor's arguments
    digest.update(payload)
    return digest.hexdigest()


def temp_channel_id(uids: list[str]) -> str:
    """A stable id for a command sent to an explicit uid list (FNV-1a 64)."""
    h = 0xCBF29CE484222325
    for byte in ",".join(uids).encode():
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h}{CMD_SUFFIX}"


_REFUSALS = {
    AppendStatus.BANNED: ("the channel is banned", Reason.BAN),
    AppendStatus.DISBANDED: ("the channel is disbanded", Reason.DISBAND),
    AppendStatus.NOT_SUBSCRIBER: (
        "the sender is not a subscriber of the channel",
        Reason.SUBSCRIBER_NOT_EXIST,
    ),
    AppendStatus.IN_BLACKLIST: (
        "the sender is on the channel's blacklist",
        Reason.IN_BLACKLIST,
    ),
    AppendStatus.NOT_IN_WHITELIST: (
        "the sender is not on the channel's whitelist",
        Reason.NOT_IN_WHITELIST,
    ),
    AppendStatus.SEND_BANNED: ("sending is banned in this channel", Reason.SEND_BAN),
}


def refusal(outcome: AppendOutcome) -> ApiError:
    msg, reason = _REFUSALS[outcome.status]
    return forbidden(msg, reason)


class MessageService:
    def __init__(self, store: Store, settings: Settings, ids: Snowflake) -> None:
        self.store = store
        self.settings = settings
        self.ids = ids
        self.permissions = SendPermissions(store.redis, store.keys)

    def _check_payload(self, payload: bytes) -> None:
        if not payload:
            raise bad_request("payload must not be empty")
        if len(payload) > self.settings.max_payload:
            raise ApiError(
                413,
                f"payload is {len(payload)} bytes decoded; "
                f"the limit is {self.settings.max_payload}",
            )

    def _check_list(self, uids: list[str], field: str) -> list[str]:
        if len(uids) > self.settings.max_list:
            raise bad_request(f"{field} has more than {self.settings.max_list} entries")
        for uid in uids:
            check_id(uid, field)
        return uids

    def _message(
        self,
        *,
        req_header: Header,
        from_uid: str,
        channel_id: str,
        channel_type: int,
        payload: bytes,
        client_msg_no: str = "",
        setting: int = 0,
        expire: int = 0,
        topic: str = "",
    ) -> StoredMessage:
        return StoredMessage(
            message_id=self.ids.next_id(),
            client_msg_no=client_msg_no or new_client_msg_no(),
            from_uid=from_uid,
            channel_id=channel_id,
            channel_type=channel_type,
            timestamp_ms=int(time.time() * 1000),
            payload=payload,
            red_dot=int(bool(req_header.red_dot)),
            setting=setting,
            expire=expire,
            topic=topic,
            no_persist=int(bool(req_header.no_persist)),
            sync_once=int(bool(req_header.sync_once)),
        )

    async def send(self, req: SendRequest, sender: Sender) -> SendResult:
        """Validate, then store (persistent) or publish (transient, command)."""
        try:
            message, to_uids = self._build(req, sender)
        except InvalidId as exc:
            raise bad_request(str(exc)) from None
        started = time.perf_counter()
        kind = req.header.kind
        try:
            # Trusted (the manager token, most sends): no coroutine to make and await.
            check_uid = (
                ""
                if sender.trusted
                else await self._client_check(message, to_uids, sender)
            )
        except ApiError:
            record_send(kind, "refused", time.perf_counter() - started)
            raise
        if kind is not MessageKind.PERSISTENT:
            if to_uids is None:
                refused = await self.store.refusal(message, check_uid)
                if refused is not None:
                    record_send(kind, "refused", time.perf_counter() - started)
                    raise refusal(refused)
            await self.store.publish_live(
                LiveMessage(
                    message=message, to_uids=to_uids, origin_conn=sender.origin_conn
                )
            )
            record_send(kind, "published", time.perf_counter() - started)
            return _result(message, 0, persisted=False)
        digest = payload_digest(message.payload)
        outcome = await self.store.append(
            message,
            dedupe_ttl=self.settings.dedupe_ttl,
            # A client_msg_no the server made is new: no earlier send can have it.
            made_client_msg_no=not req.client_msg_no,
            digest=digest,
            new_epoch=new_epoch(),
            origin_conn=sender.origin_conn,
            check_uid=check_uid,
        )
        elapsed = time.perf_counter() - started
        if outcome.status is AppendStatus.STORED:
            record_send(kind, "stored", elapsed)
            return _result(message, outcome.seq, persisted=True)
        if outcome.status is AppendStatus.DUPLICATE:
            if outcome.digest != digest:
                record_send(kind, "conflict", elapsed)
                raise ApiError(
                    409,
                    "client_msg_no was already used by this sender in this channel "
                    "for a different payload",
                )
            record_send(kind, "duplicate", elapsed)
            return SendResult(
                message_id=outcome.message_id,
                message_idstr=str(outcome.message_id),
                client_msg_no=message.client_msg_no,
                message_seq=outcome.seq,
                persisted=True,
            )
        record_send(kind, "refused", elapsed)
        raise refusal(outcome)

    async def _client_check(
        self, message: StoredMessage, to_uids: list[str] | None, sender: Sender
    ) -> str:
        """For a client send: the refusals decided outside the channel's slot, and
        the uid the channel-side script must check ('' when trusted or exempt)."""
        if sender.trusted:
            return ""
        if to_uids is not None:
            raise forbidden(
                "only the manager may send to an explicit subscribers list",
                Reason.NOT_ALLOW_SEND,
            )
        return await self.permissions.check(
            sender.uid, message.channel_type, message.channel_id
        )

    def _build(
        self, req: SendRequest, sender: Sender
    ) -> tuple[StoredMessage, list[str] | None]:
        self._check_payload(req.payload)
        if req.setting < 0 or req.expire < 0:
            raise bad_request("setting and expire must not be negative")
        client_msg_no = req.client_msg_no
        if client_msg_no and (
            len(client_msg_no.encode()) > MAX_CLIENT_MSG_NO_BYTES
            or _CONTROL_CHARS.search(client_msg_no)
        ):
            raise bad_request(
                f"client_msg_no must be at most {MAX_CLIENT_MSG_NO_BYTES} bytes "
                "without control characters"
            )
        from_uid = check_id(sender.uid, "from_uid")
        to_uids: list[str] | None = None
        if req.subscribers is not None:
            if req.channel_id:
                raise bad_request("give either channel_id or subscribers, not both")
            if not req.header.sync_once:
                raise bad_request(
                    "subscribers may only be used with header.sync_once=1"
                )
            to_uids = self._check_list(req.subscribers, "subscribers")
            if not to_uids:
                raise bad_request("subscribers must not be empty")
            channel_id, channel_type = temp_channel_id(to_uids), int(ChannelType.TEMP)
        else:
            if not req.channel_id:
                raise bad_request("channel_id or subscribers is required")
            channel_type = check_channel_type(req.channel_type)
            channel_id = check_id(req.channel_id, "channel_id")
            if channel_type == ChannelType.PERSON:
                channel_id = person_channel_id(from_uid, channel_id)
        message = self._message(
            req_header=req.header,
            from_uid=from_uid,
            channel_id=channel_id,
            channel_type=channel_type,
            payload=req.payload,
            client_msg_no=req.client_msg_no,
            setting=req.setting,
            expire=req.expire,
            topic=req.topic,
        )
        return message, to_uids

    async def send_batch(self, req: SendBatchRequest) -> SendBatchResponse:
        """One person message from ``from_uid`` to each subscriber."""
        try:
            from_uid = check_id(req.from_uid, "from_uid")
            uids = self._check_list(req.subscribers, "subscribers")
        except InvalidId as exc:
            raise bad_request(str(exc)) from None
        if not uids:
            raise bad_request("subscribers must not be empty")
        self._check_payload(req.payload)
        messages = [
            self._message(
                req_header=req.header,
                from_uid=from_uid,
                channel_id=person_channel_id(from_uid, uid),
                channel_type=int(ChannelType.PERSON),
                payload=req.payload,
            )
            for uid in uids
        ]
        started = time.perf_counter()
        kind = req.header.kind
        if kind is not MessageKind.PERSISTENT:
            for message in messages:
                await self.store.publish_live(LiveMessage(message=message))
            record_send(kind, "published", time.perf_counter() - started, len(messages))
            return SendBatchResponse(fail_uids=[], reason=[])
        digest = payload_digest(req.payload)
        outcomes = await self.store.append_many(
            messages,
            dedupe_ttl=self.settings.dedupe_ttl,
            digests=[digest] * len(messages),
            new_epoch=new_epoch(),
        )
        record_batch(kind, outcomes, time.perf_counter() - started)
        failed = [
            (uid, refusal(outcome).msg)
            for uid, outcome in zip(uids, outcomes, strict=True)
            if outcome.status not in (AppendStatus.STORED, AppendStatus.DUPLICATE)
        ]
        return SendBatchResponse(
            fail_uids=[uid for uid, _ in failed], reason=[msg for _, msg in failed]
        )


def _result(message: StoredMessage, seq: int, *, persisted: bool) -> SendResult:
    return SendResult(
        message_id=message.message_id,
        message_idstr=str(message.message_id),
        client_msg_no=message.client_msg_no,
        message_seq=seq,
        persisted=persisted,
    )


_BATCH_OUTCOMES = {AppendStatus.STORED: "stored", AppendStatus.DUPLICATE: "duplicate"}


def record_batch(kind: str, outcomes: list[AppendOutcome], seconds: float) -> None:
    counts = Counter(_BATCH_OUTCOMES.get(o.status, "refused") for o in outcomes)
    for outcome, count in counts.items():
        count_sends(kind, outcome, count)
    observe_send(kind, seconds)


def http_sender(from_uid: str) -> Sender:
    """A send with the manager token: trusted, WuKongIM's system device."""
    return Sender(uid=from_uid or SYSTEM_UID, trusted=True)


def client_sender(caller_uid: str, claimed_from_uid: str) -> Sender:
    """A send with a user's own credentials: the sender is the caller, whatever the
    body says; a body naming someone else is refused, never stored (C8, S4)."""
    if claimed_from_uid and claimed_from_uid != caller_uid:
        raise forbidden("from_uid must be empty or the caller's own uid")
    return Sender(uid=caller_uid, trusted=False)
