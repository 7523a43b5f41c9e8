"""Send rate of each user calling the HTTP API with his own credentials.

The WebSocket gateway limits sends per connection (``JINDOU_WS_SEND_RATE``); a
client holding a user's token could otherwise send through the HTTP API without
a limit. One token bucket per uid and api process; the manager is not limited.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from broker.gateway.limits import TokenBucket

# Buckets kept at once; past it the map starts over (one dict, no LRU work per
# send: reaching it takes credentials of that many users).
MAX_TRACKED_USERS = 100_000


class UserSendLimits:
    def __init__(
        self,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_users: int = MAX_TRACKED_USERS,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.max_users = max_users
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, uid: str) -> bool:
        """A send for ``uid`` now; False if over the rate. Rate 0: no limit."""
        if self.rate <= 0:
            return True
        bucket = self._buckets.get(uid)
        if bucket is None:
            if len(self._buckets) >= self.max_users:
                self._buckets.clear()
            bucket = self._buckets[uid] = TokenBucket(self.rate, self.burst, self.clock)
        return bucket.take()
