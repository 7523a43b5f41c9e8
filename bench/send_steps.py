"""What each pure-Python step of one HTTP send costs, without I/O.

``python -m bench.send_steps`` times the api's own work for a persisted person
message, step by step (best of 3 x 100,000 calls each, µs per call): decoding the
body, building and checking the message, packing the append script's command,
parsing its reply, metrics and the response. The sum is the api's own Python cost
of a send; B1 measures everything else around it (aiohttp, the event loop, the
Redis round trip, system calls). See BENCHMARKS.md, "Misses".
"""

from __future__ import annotations

import base64
import json
import timeit
from collections.abc import Callable

import msgspec

from broker.append_pack import AppendPacker
from broker.http.observe import RouteMeter, request_id_from
from broker.http.routing import is_manager_token, json_response
from broker.keys import Keys
from broker.messages import (
    MessageService,
    _result,
    http_sender,
    new_client_msg_no,
    new_epoch,
    payload_digest,
)
from broker.metrics import record_send
from broker.protocol import SendRequest, SendResponse
from broker.scripts import parse_append
from broker.settings import Settings
from broker.snowflake import Snowflake
from broker.store import _encode, _message_args

TOKEN = "bench-manager-token-0123456789abcdef"
CALLS = 100_000


def steps() -> dict[str, Callable[[], object]]:
    payload = base64.b64encode(b'{"type":1,"content":"hello ' + b"x" * 80 + b'"}')
    body = json.dumps(
        {
            "header": {"red_dot": 1},
            "from_uid": "u1",
            "channel_id": "v1",
            "channel_type": 1,
            "payload": payload.decode(),
        }
    ).encode()
    decoder = msgspec.json.Decoder(SendRequest)
    service = MessageService.__new__(MessageService)  # only its pure parts are used
    service.ids = Snowflake(1)
    service.settings = Settings()
    packer = AppendPacker("0" * 40, Keys(prefix="jd:", shards=128), 0)
    meter = RouteMeter("/message/send")
    request = decoder.decode(body)
    sender = http_sender(request.from_uid)
    message, _ = service._build(request, sender)
    digest = payload_digest(message.payload)
    args = _message_args(message, digest, new_epoch())
    result = _result(message, 5, persisted=True)
    return {
        "decode the body": lambda: decoder.decode(body),
        "manager token": lambda: is_manager_token(TOKEN, TOKEN),
        "build and check the message": lambda: service._build(request, sender),
        "payload digest": lambda: payload_digest(message.payload),
        "new epoch": new_epoch,
        "encode the message (msgpack)": lambda: _encode(message),
        "append arguments": lambda: _message_args(message, digest, "e"),
        "pack the append command": lambda: packer.pack(
            channel_type=1,
            channel_id=message.channel_id,
            dedupe_ttl=0,
            **args,
        ),
        "parse the reply": lambda: parse_append([1, 5, b"e"]),
        "send metrics": lambda: record_send("persistent", "stored", 0.001),
        "request id": lambda: request_id_from(None),
        "route metrics": lambda: meter.record("POST", 200, 0.001),
        "response": lambda: json_response(SendResponse(data=result)),
        "(of which a server-made client_msg_no)": new_client_msg_no,
    }


def main() -> None:
    total = 0.0
    for name, step in steps().items():
        best = min(timeit.repeat(step, number=CALLS, repeat=3)) / CALLS * 1e6
        if not name.startswith("("):
            total += best
        print(f"{best:6.2f} us  {name}")
    print(f"{total:6.2f} us  in all")


if __name__ == "__main__":
    main()
