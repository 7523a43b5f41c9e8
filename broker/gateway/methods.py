"""The JSON-RPC methods of an authenticated connection.

Frames that cannot be served get a JSON-RPC error and the connection stays open,
as WuKongIM v2 does; only protocol-level abuse (binary data, oversized frames, a
full outbox) closes it.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import TYPE_CHECKING, Any

import msgspec
from redis.exceptions import RedisError

from broker.access import require_reader
from broker.channels import InvalidId, check_channel_type
from broker.errors import ApiError, Reason
from broker.gateway import frames
from broker.http.routing import Caller
from broker.messages import Sender
from broker.metrics import REDIS_ERRORS
from broker.protocol import Header, MessageSyncRequest, SendRequest
from broker.protocol_conversations import ConversationSyncRequest

if TYPE_CHECKING:
    from broker.gateway.session import Session
    from broker.services import Services

log = logging.getLogger(__name__)

decode_messagesync = msgspec.json.Decoder(MessageSyncRequest).decode
decode_conversation_sync = msgspec.json.Decoder(ConversationSyncRequest).decode
_json = msgspec.json.Encoder().encode


def reason_for(exc: ApiError) -> int:
    """The WuKongIM reason code of a refused send."""
    if exc.reason_code:
        return exc.reason_code
    if exc.status >= 500:
        return Reason.SYSTEM_ERROR
    return Reason.NOT_ALLOW_SEND


def decode_payload(payload: str | dict[str, Any] | list[Any]) -> bytes:
    """The SDKs send base64 of the JSON bytes; a plain JSON value is accepted too."""
    if isinstance(payload, str):
        return base64.b64decode(payload, validate=True)
    return _json(payload)


class Methods:
    """The requests of every connection of the node: one shared, stateless
    instance (a connection carries only its own state, ``Session``)."""

    def __init__(self, services: Services) -> None:
        self.services = services

    @staticmethod
    def reply(session: Session, request_id: str | int, value: Any) -> None:
        session.reply(frames.result(request_id, value))

    @staticmethod
    def fail(
        session: Session, request_id: str | int | None, code: int, message: str
    ) -> None:
        session.reply(frames.error(request_id, code, message))

    async def handle(self, session: Session, raw: str | bytes) -> None:
        try:
            envelope = frames.decode_envelope(raw)
        except msgspec.ValidationError as exc:
            self.fail(session, None, frames.INVALID_REQUEST, f"invalid request: {exc}")
            return
        except (msgspec.DecodeError, RecursionError) as exc:  # too deep: not a crash
            self.fail(session, None, frames.PARSE_ERROR, f"invalid JSON: {exc}")
            return
        rid = envelope.id
        if envelope.jsonrpc != "2.0":
            self.fail(session, rid, frames.INVALID_REQUEST, 'jsonrpc must be "2.0"')
            return
        method = envelope.method
        if not method:
            return  # a response from the client: nothing is waiting for it
        if method == "recvack":
            self._recvack(session, envelope)
            return
        if rid is None:
            return  # unknown notifications are ignored, as by the SDKs
        if not session.may_request():
            self.fail(session, rid, Reason.RATE_LIMIT, "rate limit: too many requests")
            return
        try:
            await self._request(session, method, rid, frames.params_bytes(envelope))
        except msgspec.DecodeError as exc:
            self.fail(session, rid, frames.INVALID_PARAMS, f"invalid params: {exc}")
        except ApiError as exc:
            self.fail(session, rid, exc.status, exc.msg)
        except RedisError:
            REDIS_ERRORS.labels("gateway").inc()
            log.warning("redis unavailable during %s", method)
            self.fail(session, rid, Reason.SYSTEM_ERROR, "storage is unavailable")

    async def _request(
        self, session: Session, method: str, rid: str | int, params: bytes
    ) -> None:
        match method:
            case "send":
                sent = await self._send(session, frames.decode_send(params))
                self.reply(session, rid, sent)
            case "ping":
                self.reply(session, rid, None)
            case "disconnect":
                frames.decode_disconnect(params)
                self.reply(session, rid, None)
                session.finish(1000, "client disconnect")  # CloseCode.NORMAL
            case "channel.messagesync":
                await self._messagesync(session, rid, decode_messagesync(params))
            case "conversation.sync":
                await self._conversation_sync(session, rid, params)
            case "connect":
                self.fail(session, rid, frames.INVALID_REQUEST, "already connected")
            case _:
                self.fail(
                    session, rid, frames.METHOD_NOT_FOUND, f"unknown method {method!r}"
                )

    def _recvack(self, session: Session, envelope: frames.Envelope) -> None:
        try:
            ack = frames.decode_recvack(frames.params_bytes(envelope))
        except msgspec.DecodeError as exc:
            if envelope.id is not None:
                self.fail(
                    session,
                    envelope.id,
                    frames.INVALID_PARAMS,
                    f"invalid params: {exc}",
                )
            return
        session.acked(str(ack.messageId))

    async def _send(self, session: Session, p: frames.SendParams) -> frames.SendResult:
        def refused(code: int, reason: str) -> frames.SendResult:
            return frames.SendResult(
                messageId="0",
                messageSeq=0,
                clientMsgNo=p.clientMsgNo,
                reasonCode=code,
                reason=reason,
            )

        if not session.may_send():
            return refused(Reason.RATE_LIMIT, "rate limit: too many sends")
        try:
            payload = decode_payload(p.payload)
        except (binascii.Error, ValueError):
            return refused(Reason.PAYLOAD_DECODE_ERROR, "payload is not valid base64")
        try:
            check_channel_type(p.channelType)
        except InvalidId as exc:
            return refused(Reason.NOT_SUPPORT_CHANNEL_TYPE, str(exc))
        request = SendRequest(
            header=Header(
                no_persist=int(p.header.noPersist),
                red_dot=int(p.header.redDot),
                sync_once=int(p.header.syncOnce),
            ),
            setting=frames.setting_bits(p.setting),
            client_msg_no=p.clientMsgNo,
            channel_id=p.channelId,
            channel_type=p.channelType,
            expire=max(p.expire, 0),
            topic=p.topic,
            payload=payload,
        )
        sender = Sender(uid=session.uid, trusted=False, origin_conn=session.conn_id)
        try:
            sent = await self.services.messages.send(request, sender)
        except ApiError as exc:
            return refused(reason_for(exc), exc.msg)
        return frames.SendResult(
            messageId=sent.message_idstr,
            messageSeq=sent.message_seq,
            clientMsgNo=sent.client_msg_no,
            reasonCode=Reason.SUCCESS,
            persisted=sent.persisted,
        )

    async def _messagesync(
        self, session: Session, rid: str | int, req: MessageSyncRequest
    ) -> None:
        uid = session.uid
        await self._check_reader(uid, req.channel_id, req.channel_type)
        response = await self.services.history.sync(
            msgspec.structs.replace(req, login_uid=uid)
        )
        self.reply(session, rid, response)

    async def _check_reader(self, uid: str, channel_id: str, channel_type: int) -> None:
        """The same rule as the HTTP reads with user credentials (broker.access)."""
        svc = self.services
        await require_reader(
            svc.redis, svc.keys, Caller(uid), uid, channel_id, channel_type
        )

    async def _conversation_sync(
        self, session: Session, rid: str | int, params: bytes
    ) -> None:
        """The HTTP ``/conversation/sync`` body; ``uid`` is the connection's."""
        req = decode_conversation_sync(params)
        req = msgspec.structs.replace(req, uid=session.uid)
        self.reply(session, rid, await self.services.conversations.sync(req))
