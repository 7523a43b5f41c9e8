"""The printed table and the JSON document. Pure: no I/O."""

from __future__ import annotations

from typing import Any

from bench.figures import Figure, Spread, Verdict

COLUMNS = ("id", "figure", "median [min-max]", "baseline", "ratio", "target", "")


def number(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def show_spread(s: Spread | None) -> str:
    if s is None:
        return "-"
    return f"{number(s.median)} [{number(s.low)}-{number(s.high)}]"


def row(fig: Figure) -> tuple[str, ...]:
    name = f"{fig.name} ({fig.unit})" if fig.unit else fig.name
    if fig.unavailable:
        return (fig.scenario, name, f"not available: {fig.unavailable}", "", "", "", "")
    base = fig.baseline
    baseline = show_spread(base)
    if base is not None and fig.baseline_name:
        baseline = f"{baseline} {fig.baseline_name}"
    ratio = fig.ratio
    verdict = fig.verdict
    mark = "MISS <<" if verdict is Verdict.MISSED else verdict.value
    return (
        fig.scenario,
        name,
        show_spread(fig.value),
        baseline,
        f"{ratio:.0%}" if ratio is not None else "-",
        fig.target.describe(fig.unit) if fig.target else "-",
        mark,
    )


def table(figures: list[Figure]) -> str:
    """A Markdown table (readable in a terminal too)."""
    rows = [COLUMNS, *(row(f) for f in figures)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]

    def line(cells: tuple[str, ...]) -> str:
        return (
            "| "
            + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))
            + " |"
        )

    out = [line(rows[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows[1:]]
    notes = [f"- {f.scenario} {f.name}: {f.note}" for f in figures if f.note]
    if notes:
        out += ["", *notes]
    return "\n".join(out)


def _spread_json(s: Spread | None) -> dict[str, Any] | None:
    if s is None:
        return None
    return {"median": s.median, "min": s.low, "max": s.high, "runs": list(s.runs)}


def figure_json(fig: Figure) -> dict[str, Any]:
    return {
        "scenario": fig.scenario,
        "name": fig.name,
        "unit": fig.unit,
        "value": _spread_json(fig.value),
        "baseline": _spread_json(fig.baseline),
        "baseline_name": fig.baseline_name,
        "ratio": fig.ratio,
        "target": (
            {"goal": fig.target.goal.value, "bound": fig.target.bound}
            if fig.target
            else None
        ),
        "verdict": fig.verdict.value,
        "unavailable": fig.unavailable or None,
        "note": fig.note or None,
    }


def document(
    figures: list[Figure], machine: dict[str, Any], run: dict[str, Any]
) -> dict[str, Any]:
    return {
        "machine": machine,
        "run": run,
        "figures": [figure_json(f) for f in figures],
    }
