"""A WebSocket client on a bare socket with a tiny receive buffer, for tests of
clients that stop reading (R16). After the handshake and ``connect`` it never reads
again, so the server's writes back up at once."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct


def client_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """One masked frame, as clients must send them (RFC 6455 §5.3)."""
    mask = os.urandom(4)
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


async def stalled_client(port: int, uid: str, token: str) -> socket.socket:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    )
    await loop.sock_sendall(sock, request.encode())
    connect = {
        "id": "1",
        "method": "connect",
        "params": {"uid": uid, "token": token, "deviceFlag": 2},
    }
    await loop.sock_sendall(sock, client_frame(json.dumps(connect).encode()))
    received = b""
    async with asyncio.timeout(5):
        while b'"reasonCode":1' not in received:
            chunk = await loop.sock_recv(sock, 4096)
            if not chunk:
                raise ConnectionError(f"closed during connect: {received!r}")
            received += chunk
    return sock
