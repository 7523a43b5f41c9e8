"""Figures, verdicts and the table: pure logic of the benchmark report."""

import pytest

from bench.figures import Figure, Goal, Target, Verdict, spread, unavailable
from bench.latency import percentile
from bench.report import figure_json, table


def test_spread_is_median_and_range():
    s = spread([3.0, 1.0, 2.0])
    assert (s.median, s.low, s.high) == (2.0, 1.0, 3.0)
    assert s.relative == pytest.approx(0.5)
    with pytest.raises(ValueError, match="at least one run"):
        spread([])


@pytest.mark.parametrize(
    ("runs", "baseline", "target", "verdict"),
    [
        ([60, 50, 55], [100, 100, 100], Target(Goal.RATIO_AT_LEAST, 0.5), Verdict.MET),
        (
            [40, 45, 49],
            [100, 100, 100],
            Target(Goal.RATIO_AT_LEAST, 0.5),
            Verdict.MISSED,
        ),
        ([400], [200], Target(Goal.RATIO_AT_MOST, 2.5), Verdict.MET),
        ([600], [200], Target(Goal.RATIO_AT_MOST, 2.5), Verdict.MISSED),
        ([4, 5, 6], None, Target(Goal.AT_MOST, 5), Verdict.MET),
        ([4, 6, 6], None, Target(Goal.AT_MOST, 5), Verdict.MISSED),
        ([120_000], None, Target(Goal.AT_LEAST, 100_000), Verdict.MET),
        ([1.0], None, None, Verdict.NO_TARGET),
        # A ratio target without a baseline cannot be judged.
        ([1.0], None, Target(Goal.RATIO_AT_LEAST, 0.5), Verdict.UNAVAILABLE),
    ],
)
def test_verdicts(runs, baseline, target, verdict):
    fig = Figure("B0", "x", "u", runs, baseline, target=target)
    assert fig.verdict is verdict


def test_unavailable_figure_has_no_number():
    fig = unavailable("B4", "latency", "ms", "no gateway", Target(Goal.AT_MOST, 5))
    assert fig.value is None
    assert fig.verdict is Verdict.UNAVAILABLE
    data = figure_json(fig)
    assert data["value"] is None
    assert data["unavailable"] == "no gateway"
    assert "not available: no gateway" in table([fig])


def test_table_marks_misses_and_shows_ratio():
    hit = Figure(
        "B1",
        "rate",
        "msgs/s",
        [60.0] * 3,
        [100.0] * 3,
        target=Target(Goal.RATIO_AT_LEAST, 0.5),
    )
    miss = Figure(
        "B2",
        "rate",
        "msgs/s",
        [40.0] * 3,
        [100.0] * 3,
        target=Target(Goal.RATIO_AT_LEAST, 0.5),
        note="why",
    )
    text = table([hit, miss])
    b1, b2 = (line for line in text.splitlines() if line.startswith(("| B1", "| B2")))
    assert "60%" in b1
    assert "MISS" not in b1
    assert "40%" in b2
    assert "MISS" in b2
    assert "- B2 rate: why" in text


def test_percentile_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([], 99) == 0
