"""Figures, targets and verdicts. Pure: no I/O.

A figure is the list of its runs; the table shows their median and spread, the
median of the same-run baseline, the ratio between the two and the target.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from enum import Enum


class Goal(Enum):
    RATIO_AT_LEAST = "ratio>="  # value / baseline >= bound
    RATIO_AT_MOST = "ratio<="  # value / baseline <= bound
    AT_LEAST = ">="  # value >= bound
    AT_MOST = "<="  # value <= bound


@dataclass(frozen=True, slots=True)
class Target:
    goal: Goal
    bound: float

    def describe(self, unit: str) -> str:
        if self.goal is Goal.RATIO_AT_LEAST:
            return f">= {self.bound:.0%} of baseline"
        if self.goal is Goal.RATIO_AT_MOST:
            return f"<= {self.bound:g}x baseline"
        return f"{self.goal.value} {self.bound:,g} {unit}"


@dataclass(frozen=True, slots=True)
class Spread:
    """Median of the runs and their range."""

    median: float
    low: float
    high: float
    runs: tuple[float, ...]

    @property
    def relative(self) -> float:
        """Half the range as a fraction of the median (0 when it is 0)."""
        return (self.high - self.low) / 2 / self.median if self.median else 0.0


def spread(runs: list[float]) -> Spread:
    if not runs:
        raise ValueError("a figure needs at least one run")
    return Spread(statistics.median(runs), min(runs), max(runs), tuple(runs))


class Verdict(Enum):
    MET = "ok"
    MISSED = "MISS"
    NO_TARGET = "-"
    UNAVAILABLE = "not available"


@dataclass(frozen=True, slots=True)
class Figure:
    scenario: str  # "B1"
    name: str  # what is measured, e.g. "msgs/s"
    unit: str
    runs: list[float] = field(default_factory=list)
    baseline_runs: list[float] | None = None
    baseline_name: str = ""
    target: Target | None = None
    unavailable: str = ""  # why there is no number; never a made-up one
    note: str = ""

    @property
    def value(self) -> Spread | None:
        return spread(self.runs) if self.runs and not self.unavailable else None

    @property
    def baseline(self) -> Spread | None:
        return spread(self.baseline_runs) if self.baseline_runs else None

    @property
    def ratio(self) -> float | None:
        value, base = self.value, self.baseline
        if value is None or base is None or base.median == 0:
            return None
        return value.median / base.median

    @property
    def verdict(self) -> Verdict:
        value = self.value
        if value is None:
            return Verdict.UNAVAILABLE
        if self.target is None:
            return Verdict.NO_TARGET
        goal, bound = self.target.goal, self.target.bound
        if goal in (Goal.RATIO_AT_LEAST, Goal.RATIO_AT_MOST):
            ratio = self.ratio
            if ratio is None:
                return Verdict.UNAVAILABLE
            met = ratio >= bound if goal is Goal.RATIO_AT_LEAST else ratio <= bound
        else:
            met = (
                value.median >= bound
                if goal is Goal.AT_LEAST
                else value.median <= bound
            )
        return Verdict.MET if met else Verdict.MISSED


def unavailable(
    scenario: str, name: str, unit: str, reason: str, target: Target | None = None
) -> Figure:
    return Figure(scenario, name, unit, target=target, unavailable=reason)
