"""JSON-RPC frames of WuKongIM's EasySDK protocol (reference part A). Pure: no I/O.

Incoming frames are decoded in two steps: the envelope (method, id, raw params),
then the params with the decoder of that method. Decoders and the encoder are
built once, here.
"""

from __future__ import annotations

from typing import Any

import msgspec

UNSET = msgspec.UNSET
UnsetType = msgspec.UnsetType

# JSON-RPC error codes for frames we cannot serve (the connection stays open).
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
NOT_AUTHENTICATED = -32001


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    """Any client frame. A request has ``id``; a notification has none."""

    method: str = ""
    id: str | int | None = None
    params: msgspec.Raw = msgspec.Raw()
    jsonrpc: str = "2.0"


class WireHeader(msgspec.Struct, frozen=True, kw_only=True):
    noPersist: bool = False
    redDot: bool = False
    syncOnce: bool = False
    dup: bool = False
    end: bool = False


class WireSetting(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    receipt: bool = False
    signal: bool = False
    stream: bool = False
    topic: bool = False


# UNSET fields are left out of the JSON; everything else is always sent.

# Setting bits as WuKongIM's binary protocol defines them.
SETTING_BITS = {"receipt": 0x80, "signal": 0x20, "topic": 0x08, "stream": 0x02}


def setting_bits(setting: WireSetting | None) -> int:
    if setting is None:
        return 0
    return sum(bit for name, bit in SETTING_BITS.items() if getattr(setting, name))


def wire_setting(bits: int) -> WireSetting:
    flags = {name: bool(bits & bit) for name, bit in SETTING_BITS.items()}
    return WireSetting(**flags)


class ConnectParams(msgspec.Struct, frozen=True, kw_only=True):
    uid: str
    token: str = ""
    deviceFlag: int = 0
    deviceId: str = ""
    clientTimestamp: int = 0
    version: int = 0
    clientKey: str = ""
    header: WireHeader | None = None


class SendParams(msgspec.Struct, frozen=True, kw_only=True):
    channelId: str
    channelType: int
    clientMsgNo: str = ""
    # Base64 on the wire (Go []byte); a JSON object or array is accepted as well.
    payload: str | dict[str, Any] | list[Any]
    header: WireHeader = WireHeader()
    setting: WireSetting | None = None
    topic: str = ""
    msgKey: str = ""
    expire: int = 0
    streamNo: str = ""


class RecvAckParams(msgspec.Struct, frozen=True, kw_only=True):
    messageId: str | int
    messageSeq: int = 0
    header: WireHeader | None = None


class DisconnectParams(msgspec.Struct, frozen=True, kw_only=True):
    reasonCode: int = 0
    reason: str = ""


# -- outgoing -------------------------------------------------------------------------
class ErrorObject(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    code: int
    message: str
    data: str | UnsetType = UNSET


class ResultFrame(msgspec.Struct, frozen=True, kw_only=True):
    jsonrpc: str = "2.0"
    id: str | int
    result: Any  # always present: `ping` needs an explicit `"result": null`


class ErrorFrame(msgspec.Struct, frozen=True, kw_only=True):
    jsonrpc: str = "2.0"
    id: str | int | UnsetType = UNSET
    error: ErrorObject


class Notification(msgspec.Struct, frozen=True, kw_only=True):
    jsonrpc: str = "2.0"
    method: str
    params: Any


class ConnectResult(msgspec.Struct, frozen=True, kw_only=True):
    reasonCode: int = 1
    timeDiff: int
    serverVersion: int = 5
    nodeId: int


class SendResult(msgspec.Struct, frozen=True, kw_only=True):
    messageId: str
    messageSeq: int
    clientMsgNo: str
    reasonCode: int
    persisted: bool | UnsetType = UNSET
    reason: str | UnsetType = UNSET


class RecvParams(msgspec.Struct, frozen=True, kw_only=True):
    # header, ids, seq and timestamp have no default: they are always sent (the
    # Python SDK rejects a recv without a header object).
    header: WireHeader
    setting: WireSetting | UnsetType = UNSET
    messageId: str
    messageSeq: int
    clientMsgNo: str
    timestamp: int
    channelId: str
    channelType: int
    fromUid: str
    payload: str
    topic: str | UnsetType = UNSET
    expire: int | UnsetType = UNSET


class EventParams(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    type: str
    timestamp: int
    data: str


class DisconnectNotice(msgspec.Struct, frozen=True, kw_only=True):
    reasonCode: int
    reason: str


decode_envelope = msgspec.json.Decoder(Envelope).decode
decode_connect = msgspec.json.Decoder(ConnectParams).decode
decode_send = msgspec.json.Decoder(SendParams).decode
decode_recvack = msgspec.json.Decoder(RecvAckParams).decode
decode_disconnect = msgspec.json.Decoder(DisconnectParams).decode
encode = msgspec.json.Encoder().encode


def result(request_id: str | int, value: Any) -> bytes:
    return encode(ResultFrame(id=request_id, result=value))


def error(request_id: str | int | None, code: int, message: str) -> bytes:
    rid: str | int | UnsetType = UNSET if request_id is None else request_id
    return encode(ErrorFrame(id=rid, error=ErrorObject(code=code, message=message)))


def notification(method: str, params: Any) -> bytes:
    return encode(Notification(method=method, params=params))


def params_bytes(envelope: Envelope) -> bytes:
    """The raw params; absent or null params read as an empty object."""
    raw = bytes(envelope.params)
    return raw if raw and raw != b"null" else b"{}"
