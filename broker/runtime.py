"""Running a coroutine as a process: event loop choice and shutdown signals."""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable

import anyio


async def wait_for_shutdown_signal() -> signal.Signals:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            return signum
    raise RuntimeError("signal receiver closed")  # pragma: no cover


def run(main: Callable[[], Awaitable[None]], *, use_uvloop: bool) -> None:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        use_uvloop = False
    anyio.run(main, backend="asyncio", backend_options={"use_uvloop": use_uvloop})
