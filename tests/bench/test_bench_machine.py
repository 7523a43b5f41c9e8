"""The machine record of a bench run: how busy the cores were before it started."""

import pytest

from bench.main import busy_share, busy_warning, cpu_busy_now, cpu_times

STAT = """cpu  100 5 50 800 20 0 5 0 0 0
cpu0 50 2 25 400 10 0 3 0 0 0
intr 12345
"""


def test_cpu_times_counts_idle_and_iowait_as_not_busy():
    busy, total = cpu_times(STAT)
    assert total == 980
    assert busy == 980 - 800 - 20
    with pytest.raises(ValueError):
        cpu_times("intr 1\n")


def test_busy_share_between_two_samples():
    assert busy_share((100, 1000), (150, 1100)) == pytest.approx(0.5)
    assert busy_share((100, 1000), (100, 1000)) == 0.0  # no time passed


def test_cpu_busy_now_is_a_share():
    share = cpu_busy_now(0.05)
    assert share is not None
    assert 0.0 <= share <= 1.0


def test_a_busy_machine_is_warned_about_and_a_quiet_one_is_not():
    assert "60%" in (busy_warning(0.6) or "")
    assert busy_warning(0.1) is None
    assert busy_warning(None) is None  # no /proc: nothing to say
