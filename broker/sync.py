"""Pure rules of ``/channel/messagesync``: which seqs a request selects.

Mirrors WuKongIM v2 (reference §3): the selected list is always ascending.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_SYNC_LIMIT = 10_000
PULL_DOWN = 0
PULL_UP = 1


@dataclass(frozen=True, slots=True)
class SeqWindow:
    """Inclusive seq range ``first..last`` and the most entries to return."""

    first: int
    last: int
    limit: int

    @property
    def empty(self) -> bool:
        return self.limit <= 0 or self.first > self.last


EMPTY = SeqWindow(1, 0, 0)


def select_window(
    start: int, end: int, limit: int, pull_mode: int, channel_last: int
) -> SeqWindow:
    """The window of seqs a sync request asks for, given the channel's last seq.

    ``limit`` must already be validated (0..MAX_SYNC_LIMIT).
    """
    if channel_last <= 0:
        return EMPTY
    if start == 0 and end == 0:
        # The newest `limit` messages, whatever the mode.
        if limit == 0:
            return EMPTY
        return SeqWindow(max(1, channel_last - limit + 1), channel_last, limit)
    if pull_mode == PULL_UP:
        # [start, end), capped at last; end=0 means up to last; limit=0 = no limit.
        upper = channel_last if end == 0 else min(end - 1, channel_last)
        return SeqWindow(max(start, 1), upper, limit or MAX_SYNC_LIMIT)
    # Down: (end, start], the newest `limit` seqs at or below start.
    if end > start or limit == 0:
        return EMPTY
    upper = min(start, channel_last)
    return SeqWindow(max(end + 1, upper - limit + 1, 1), upper, limit)


def has_more(returned: int, window: SeqWindow, requested_limit: int) -> int:
    """v2's ``more`` flag: in effect, whether the page came back full."""
    if requested_limit == 0:
        return 1 if window.limit == 0 else int(returned >= window.limit)
    return int(returned >= requested_limit)
