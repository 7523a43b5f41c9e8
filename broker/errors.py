"""Errors that become a WuKongIM-shaped JSON error body: ``{"status", "msg"}``."""

from __future__ import annotations


class ApiError(Exception):
    """A refused request. ``reason_code`` carries a WuKongIM reason where one fits."""

    def __init__(self, status: int, msg: str, reason_code: int = 0) -> None:
        super().__init__(msg)
        self.status = status
        self.msg = msg
        self.reason_code = reason_code


def bad_request(msg: str) -> ApiError:
    return ApiError(400, msg)


def forbidden(msg: str, reason_code: int = 0) -> ApiError:
    return ApiError(403, msg, reason_code)


class StorageUnavailable(ApiError):
    def __init__(self, msg: str = "storage is unavailable, nothing was stored") -> None:
        super().__init__(503, msg)


# WuKongIM reason codes (wkproto.ReasonCode) used in refusals.
class Reason:
    SUCCESS = 1
    AUTH_FAIL = 2
    SUBSCRIBER_NOT_EXIST = 3
    IN_BLACKLIST = 4
    PAYLOAD_DECODE_ERROR = 9
    NOT_ALLOW_SEND = 11
    CONNECT_KICK = 12
    NOT_IN_WHITELIST = 13
    SYSTEM_ERROR = 15
    CHANNEL_ID_ERROR = 16
    BAN = 19
    RATE_LIMIT = 22
    NOT_SUPPORT_CHANNEL_TYPE = 23
    DISBAND = 24
    SEND_BAN = 25
