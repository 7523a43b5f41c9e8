"""Fixtures for webhook tests: a real HTTP receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from webhook_helpers import SECRET
from webhook_receiver import Receiver


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = await Receiver(SECRET).start()
    yield rec
    await rec.stop()
