"""TickBatcher: calls of one loop tick run as one batch; failures stay per call."""

import asyncio

import pytest

from broker.batching import TickBatcher


class Recorder:
    def __init__(self, fail_on=None, raise_all=None, delay=0.0):
        self.batches = []
        self.fail_on = fail_on
        self.raise_all = raise_all
        self.delay = delay

    async def __call__(self, items):
        self.batches.append(list(items))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.raise_all is not None:
            raise self.raise_all
        return [ValueError(f"bad {i}") if i == self.fail_on else i * 10 for i in items]


async def test_calls_of_one_tick_form_one_batch_in_order():
    run = Recorder()
    batcher = TickBatcher(run)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(5)))
    assert results == [0, 10, 20, 30, 40]
    assert run.batches == [[0, 1, 2, 3, 4]]


async def test_a_lone_call_is_sent_without_waiting_for_others():
    run = Recorder()
    batcher = TickBatcher(run)
    assert await asyncio.wait_for(batcher.submit(7), timeout=1) == 70
    assert await batcher.submit(8) == 80
    assert run.batches == [[7], [8]]


async def test_an_item_error_fails_only_that_call():
    batcher = TickBatcher(Recorder(fail_on=2))
    results = await asyncio.gather(
        *(batcher.submit(i) for i in range(4)), return_exceptions=True
    )
    assert results[:2] == [0, 10]
    assert isinstance(results[2], ValueError)
    assert results[3] == 30


async def test_a_batch_error_fails_every_call_of_the_batch():
    batcher = TickBatcher(Recorder(raise_all=ConnectionError("down")))
    results = await asyncio.gather(
        *(batcher.submit(i) for i in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, ConnectionError) for r in results)


async def test_max_batch_splits_large_bursts():
    run = Recorder()
    batcher = TickBatcher(run, max_batch=3)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(7)))
    assert results == [i * 10 for i in range(7)]
    assert [len(b) for b in run.batches] == [3, 3, 1]


async def test_a_cancelled_caller_does_not_cancel_the_others():
    run = Recorder(delay=0.05)
    batcher = TickBatcher(run)
    first = asyncio.ensure_future(batcher.submit(1))
    second = asyncio.ensure_future(batcher.submit(2))
    await asyncio.sleep(0.01)  # the batch is running
    first.cancel()
    assert await second == 20
    with pytest.raises(asyncio.CancelledError):
        await first
    assert run.batches == [[1, 2]]


async def test_calls_queued_behind_a_running_batch_go_together():
    run = Recorder(delay=0.02)
    batcher = TickBatcher(run, max_in_flight=1)
    first = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0.005)  # the first batch is running
    later = [asyncio.ensure_future(batcher.submit(i)) for i in (2, 3)]
    await asyncio.sleep(0)
    more = asyncio.ensure_future(batcher.submit(4))
    assert await asyncio.gather(first, *later, more) == [10, 20, 30, 40]
    assert run.batches == [[1], [2, 3, 4]]


async def test_a_failed_batch_still_lets_the_next_one_run():
    run = Recorder(delay=0.01, raise_all=ConnectionError("down"))
    batcher = TickBatcher(run, max_in_flight=1)
    first = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0.002)
    second = asyncio.ensure_future(batcher.submit(2))
    results = await asyncio.gather(first, second, return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    assert run.batches == [[1], [2]]
