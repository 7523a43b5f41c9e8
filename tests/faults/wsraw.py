"""A blocking WebSocket client on a bare socket, for fuzzing: it sends exactly the
bytes it is given (invalid UTF-8 in text frames, fragments, any opcode) and reads the
server's frames one by one."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import struct

from tests.gateway.rawsocket import client_frame

CLOSE, PING, PONG = 0x8, 0x9, 0xA


def fragment(payload: bytes, opcode: int, fin: bool) -> bytes:
    """One masked frame with the FIN bit as given (0x0 = continuation)."""
    frame = bytearray(client_frame(payload, opcode))
    if not fin:
        frame[0] &= 0x7F
    return bytes(frame)


class Closed(Exception):
    def __init__(self, code: int | None) -> None:
        super().__init__(f"closed with {code}")
        self.code = code


class RawWs:
    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buffer = b""
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise Closed(None)
        self.buffer += chunk

    def send_raw(self, data: bytes) -> None:
        """Bytes as given; a server that already closed may reset the socket."""
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.sock.sendall(data)

    def send_text(self, text: str) -> None:
        self.send_raw(client_frame(text.encode()))

    def frame(self) -> tuple[int, bytes]:
        """The next server frame (opcode, payload); pings are answered."""
        while True:
            while len(self.buffer) < 2:
                self._fill()
            opcode, size = self.buffer[0] & 0x0F, self.buffer[1] & 0x7F
            start = 2
            if size == 126:
                start = 4
            elif size == 127:
                start = 10
            while len(self.buffer) < start:
                self._fill()
            if size == 126:
                size = struct.unpack("!H", self.buffer[2:4])[0]
            elif size == 127:
                size = struct.unpack("!Q", self.buffer[2:10])[0]
            while len(self.buffer) < start + size:
                self._fill()
            payload = self.buffer[start : start + size]
            self.buffer = self.buffer[start + size :]
            if opcode == PING:
                self.send_raw(client_frame(payload, PONG))
                continue
            return opcode, payload

    def json_frame(self) -> dict:
        """The next text frame as JSON; raises Closed at a close frame or EOF."""
        while True:
            opcode, payload = self.frame()
            if opcode == CLOSE:
                raise Closed(int.from_bytes(payload[:2]) if len(payload) >= 2 else None)
            if opcode == 0x1:
                return json.loads(payload)

    def call(self, request: dict) -> dict:
        self.send_text(json.dumps(request))
        while True:
            reply = self.json_frame()
            if reply.get("id") == request["id"]:
                return reply

    def close(self) -> None:
        self.sock.close()


def login(port: int, uid: str, token: str) -> RawWs:
    ws = RawWs(port)
    reply = ws.call(
        {
            "id": "login",
            "method": "connect",
            "params": {"uid": uid, "token": token, "deviceFlag": 2},
        }
    )
    assert reply.get("result", {}).get("reasonCode") == 1, reply
    return ws
