from __future__ import annotations

import pytest

from tests.workers.harness import Workers


@pytest.fixture
def workers(settings, tmp_path):
    """Worker processes with a short lease (600 ms) so tests see rebalancing fast."""
    harness = Workers(settings, tmp_path, JINDOU_WORKER_LEASE_MS="600")
    yield harness
    harness.stop_all()
