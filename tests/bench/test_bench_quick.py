"""`jindou bench --quick` on a subset cheap enough for CI: the JSON has every
figure (numbers or an explicit reason), the table is printed. No thresholds."""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

CHEAP = ["B1", "B3", "B7", "B9"]


def _env():
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("JINDOU_")}


@pytest.mark.timeout(180)
def test_quick_subset_writes_every_figure(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "broker",
            "bench",
            *CHEAP,
            "--quick",
            "--duration",
            "1",
            "--json",
            str(out),
        ],
        cwd=REPO_ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    figures = doc["figures"]
    by_scenario = {}
    for fig in figures:
        by_scenario.setdefault(fig["scenario"], []).append(fig)
    assert sorted(by_scenario) == CHEAP
    for fig in figures:
        # A figure is a median of 3 runs with its spread, or says why it is missing.
        if fig["unavailable"]:
            assert fig["value"] is None
            assert fig["verdict"] == "not available"
            continue
        value = fig["value"]
        assert len(value["runs"]) == 3, fig
        assert value["min"] <= value["median"] <= value["max"]
        assert value["median"] > 0, fig
        if fig["baseline"] is not None:
            assert len(fig["baseline"]["runs"]) == 3
            assert fig["ratio"] == pytest.approx(
                value["median"] / fig["baseline"]["median"]
            )
        assert fig["verdict"] in ("ok", "MISS", "-")
    # The scenarios whose parts exist today report real numbers.
    names = {(f["scenario"], f["name"]): f for f in figures}
    send = names[("B1", "send rate")]
    assert send["unavailable"] is None
    assert send["baseline"] is not None
    assert send["target"] == {"goal": "ratio>=", "bound": 0.5}
    assert names[("B7", "messages served")]["unavailable"] is None
    memory = names[("B9", "Redis memory per message")]
    assert memory["unavailable"] is None
    assert memory["baseline"]["median"] == 200
    b3 = [f for f in by_scenario["B3"] if f["value"] is not None]
    assert b3, "B3 always measures the raw Redis append ceiling"
    # The machine and the exact command are recorded.
    assert doc["machine"]["nproc"] >= 1
    assert "redis" in doc["machine"]["redis"].lower()
    assert 0.0 <= doc["machine"]["cpu_busy_at_start"] <= 1.0
    assert doc["run"]["command"].startswith("jindou bench B1 B3 B7 B9 --quick")
    # The table names every scenario and marks misses plainly.
    for scenario in CHEAP:
        assert f"| {scenario} " in proc.stdout
    assert ("MISS" in proc.stdout) == any(f["verdict"] == "MISS" for f in figures)


def test_unknown_scenario_is_a_usage_error():
    proc = subprocess.run(
        [sys.executable, "-m", "broker", "bench", "B42"],
        cwd=REPO_ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "unknown scenario B42" in proc.stderr
