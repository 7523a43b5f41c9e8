"""Running a coroutine as a process: event loop choice and shutdown signals.

The signal handlers are installed before ``main`` starts, so a SIGTERM that
arrives during start-up is not lost: ``wait_for_shutdown_signal`` returns at once.
A second signal cancels everything (hard stop).
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable

import anyio


class _Shutdown:
    def __init__(self) -> None:
        self.event = anyio.Event()
        self.signum = signal.SIGTERM


_state: _Shutdown | None = None


async def wait_for_shutdown_signal() -> signal.Signals:
    """Wait until SIGTERM or SIGINT (handlers are installed by :func:`run`)."""
    if _state is None:  # running outside `run` (tests): listen here
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                return signum
    assert _state is not None
    await _state.event.wait()
    return _state.signum


async def _supervised(main: Callable[[], Awaitable[None]]) -> None:
    global _state
    _state = state = _Shutdown()
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                async for signum in signals:
                    if state.event.is_set():
                        tg.cancel_scope.cancel()  # second signal: stop now
                        return
                    state.signum = signum
                    state.event.set()

            tg.start_soon(watch)
            await main()
            tg.cancel_scope.cancel()


def run(main: Callable[[], Awaitable[None]], *, use_uvloop: bool) -> None:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        use_uvloop = False
    anyio.run(
        _supervised, main, backend="asyncio", backend_options={"use_uvloop": use_uvloop}
    )
