"""The webhook sender's scripts touch several keys: they must share one slot."""

from broker.keys import Keys
from tests.unit.test_keys_slots import slot


def test_webhook_keys_share_one_cluster_slot():
    keys = Keys(prefix="jd:", shards=128)
    names = [
        keys.webhook_outbox,
        keys.webhook_dead,
        keys.webhook_jobs,
        keys.webhook_due,
        keys.webhook_attempts,
        keys.webhook_seen("n-1"),
        keys.webhook_seen("o-{odd}:id"),
    ]
    assert len(set(names)) == len(names)
    assert len({slot(name) for name in names}) == 1
