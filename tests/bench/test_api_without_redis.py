"""B1X/B2X: the api whose appends are answered in the process (the ceiling of its
HTTP send path) acknowledges sends with seqs and writes nothing to Redis; the
default bench run leaves these diagnosis scenarios out."""

import json
import sys
import urllib.request

from bench.cluster import Api, Cluster
from bench.main import SCENARIOS, select
from bench.scenarios_http import WITHOUT_REDIS, stored_entries

BODY = {
    "header": {"red_dot": 1},
    "from_uid": "u1",
    "channel_id": "v1",
    "channel_type": 1,
    "payload": "aGVsbG8=",
}


def _send(api: Api, token: str) -> dict:
    request = urllib.request.Request(
        f"{api.url}/message/send",
        data=json.dumps(BODY).encode(),
        headers={"token": token, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        return json.loads(response.read())


def test_default_run_leaves_the_diagnosis_scenarios_out():
    default = [s.id for s in select([])]
    assert default == [f"B{i}" for i in range(1, 10)]
    assert [s.id for s in select(["b1x", "B2X"])] == ["B1X", "B2X"]
    assert {s.id for s in SCENARIOS if s.on_request} == {"B1X", "B2X"}


def test_api_without_redis_acknowledges_and_stores_nothing(tmp_path):
    assert WITHOUT_REDIS[0] == sys.executable
    with Cluster(tmp_path / "cluster", shards=16) as cluster:
        (api,) = cluster.start_apis(1, argv=WITHOUT_REDIS)
        first = _send(api, cluster.token)["data"]
        second = _send(api, cluster.token)["data"]
        assert first["persisted"] is True
        assert second["message_seq"] == first["message_seq"] + 1
        assert stored_entries(cluster) == 0
