"""Coalescing: calls made in the same event-loop tick go to Redis together.

Under load many requests want one Redis round trip each at the same moment. A
:class:`TickBatcher` collects the calls submitted before the loop gets back to its
scheduled callbacks and runs them as one batch (one pipeline: one write and one read
instead of one per call). A lone call waits for no one: it is sent at the end of the
current tick.
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
    def __init__(self, run_batch: BatchRunner[T, R], *, max_batch: int = 256) -> None:
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        # A batch runs in its own task so that a caller that is cancelled cannot
        # cancel the calls of the others; the set keeps those tasks referenced.
        self._running: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._waiting.append((item, future))
        if len(self._waiting) == 1:
            loop.call_soon(self._flush)
        elif len(self._waiting) >= self._max_batch:
            self._flush()
        return await future

    def _flush(self) -> None:
        if not self._waiting:
            return
        batch, self._waiting = self._waiting, []
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
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # the caller was cancelled meanwhile
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
