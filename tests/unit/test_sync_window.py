"""The selection rules of /channel/messagesync (reference §3), case by case."""

import pytest

from broker.sync import EMPTY, SeqWindow, has_more, select_window


def seqs(window: SeqWindow) -> list[int]:
    if window.empty:
        return []
    return list(range(window.first, window.last + 1))


@pytest.mark.parametrize(
    ("start", "end", "limit", "mode", "last", "expected"),
    [
        # start=0 and end=0: the newest `limit`, in either mode.
        (0, 0, 3, 0, 10, [8, 9, 10]),
        (0, 0, 3, 1, 10, [8, 9, 10]),
        (0, 0, 20, 0, 10, list(range(1, 11))),
        (0, 0, 0, 0, 10, []),
        # up: [start, end), capped at last; end=0 → up to last.
        (3, 6, 10, 1, 10, [3, 4, 5]),
        (3, 0, 10, 1, 10, list(range(3, 11))),
        (8, 20, 10, 1, 10, [8, 9, 10]),
        (11, 0, 10, 1, 10, []),
        (0, 4, 10, 1, 10, [1, 2, 3]),
        # down: (end, start], newest `limit` at or below start.
        (6, 2, 10, 0, 10, [3, 4, 5, 6]),
        (6, 0, 10, 0, 10, [1, 2, 3, 4, 5, 6]),
        (6, 0, 2, 0, 10, [5, 6]),
        (20, 0, 3, 0, 10, [8, 9, 10]),
        (5, 5, 10, 0, 10, []),
        (2, 6, 10, 0, 10, []),  # end > start: empty, no error
        (0, 6, 10, 0, 10, []),
        (6, 2, 0, 0, 10, []),  # limit 0 in down mode
        # a channel never written
        (0, 0, 10, 0, 0, []),
    ],
)
def test_window(start, end, limit, mode, last, expected):
    window = select_window(start, end, limit, mode, last)
    got = seqs(window)
    if mode == 1 and not (start == 0 and end == 0):
        assert got[: window.limit] == expected
    else:
        assert got == expected


def test_up_with_limit_zero_means_up_to_the_cap():
    window = select_window(1, 0, 0, 1, 50)
    assert (window.first, window.last) == (1, 50)
    assert window.limit == 10_000


def test_more_flag():
    window = select_window(0, 0, 3, 0, 10)
    assert has_more(3, window, 3) == 1
    assert has_more(2, window, 3) == 0
    assert has_more(0, EMPTY, 0) == 1  # v2: limit 0 answers more=1
