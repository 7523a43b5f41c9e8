"""Coalescing: calls made while Redis is busy go to Redis together.

Under load many requests want one Redis round trip each at the same moment. A
:class:`TickBatcher` collects the calls submitted before the loop gets back to its
scheduled callbacks and runs them as one batch (one pipeline: one write and one read
instead of one per call). A lone call waits for no one: it is sent at the end of the
current tick.

With ``max_in_flight`` the batcher also keeps at most that many batches running:
calls that arrive meanwhile wait for one to finish and then go together. The batch
size then follows the load (group commit): one call at a time when idle, hundreds
per round trip when busy, so the system calls and Redis' per-pipeline work are paid
once per batch instead of once per call, which is what bounds a busy process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# Runs a batch; returns one result or exception per item, in order. Raising fails
# every item of the batch with that exception.
BatchRunner = Callable[[list[T]], Awaitable[list[R | BaseException]]]


class TickBatcher(Generic[T, R]):
    def __init__(
        self,
        run_batch: BatchRunner[T, R],
        *,
        max_batch: int = 256,
        max_in_flight: int = 0,  # 0: no limit
    ) -> None:
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._flush_scheduled = False
        self._in_flight = 0
        # A batch runs in its own task so that a caller that is cancelled cannot
        # cancel the calls of the others; the set keeps those tasks referenced.
        self._running: set[asyncio.Task[None]] = set()

    def submit(self, item: T) -> asyncio.Future[R]:
        """The future of ``item``'s result. A plain function, not a coroutine: one
        coroutine less to make and resume on every send."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._waiting.append((item, future))
        if len(self._waiting) >= self._max_batch:
            self._flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return future

    def _room(self) -> bool:
        return not self._max_in_flight or self._in_flight < self._max_in_flight

    def _flush(self) -> None:
        self._flush_scheduled = False
        while self._waiting and self._room():
            batch = self._waiting[: self._max_batch]
            del self._waiting[: self._max_batch]
            self._in_flight += 1
            task = asyncio.ensure_future(self._run(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._run_batch([item for item, _ in batch])
        except BaseException as exc:  # handed to every waiting caller
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        finally:
            self._in_flight -= 1
            if self._waiting and not self._flush_scheduled:
                self._flush()  # the calls that queued up behind this batch
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # the caller was cancelled meanwhile
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
