"""Server-to-client WebSocket text frames, built once and written as is (pure).

A server frame is unmasked (RFC 6455 §5.1), so its bytes depend on the payload
alone: a message fanned out to many connections is framed once and the same bytes
go to every socket (``transport.write``), with no per-recipient encoding and no
coroutine per write.
"""

from __future__ import annotations

import struct

_FIN_TEXT = 0x81
_SHORT = struct.Struct("!BB").pack
_MEDIUM = struct.Struct("!BBH").pack
_LONG = struct.Struct("!BBQ").pack


def text_frame(payload: bytes) -> bytes:
    """One final, unmasked text frame carrying ``payload`` (UTF-8 JSON)."""
    size = len(payload)
    if size < 126:
        return _SHORT(_FIN_TEXT, size) + payload
    if size < 1 << 16:
        return _MEDIUM(_FIN_TEXT, 126, size) + payload
    return _LONG(_FIN_TEXT, 127, size) + payload
