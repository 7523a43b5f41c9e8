"""R19's pass criteria, computed from a soak's samples. Pure: no I/O.

- every ledger violation is 0;
- RSS of each api/worker process grows < 10% from its first sample after warm-up to
  its last (per process incarnation: a killed process is a new series);
- open files of each incarnation stay within ±5% after warm-up (the api's
  WebSocket connections come and go with churn, so the api is compared at samples
  where the same number of clients were connected, ± 1%);
- the dispatch PEL stays < 1,000 at every sample;
- Redis `used_memory` follows a linear model of acknowledged messages, fitted on the
  first half after warm-up, within ±15% at every later sample.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

RSS_DRIFT = 0.10
FD_DRIFT = 0.05
PEL_MAX = 1000
MEMORY_MODEL_ERROR = 0.15


def _series(
    samples: list[dict[str, Any]], warmup_s: float
) -> dict[tuple[str, int], list[dict[str, Any]]]:
    """(process name, pid) → its samples taken `warmup_s` after it first appeared."""
    first_seen: dict[tuple[str, int], int] = {}
    out: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for sample in samples:
        for name, value in sample.items():
            if not isinstance(value, dict) or "pid" not in value:
                continue
            key = (name, value["pid"])
            first_seen.setdefault(key, sample["elapsed_s"])
            if sample["elapsed_s"] - first_seen[key] >= warmup_s:
                out[key].append({**value, "ws_open": _ws_open(sample)})
    return out


def _ws_open(sample: dict[str, Any]) -> int | None:
    ws = sample.get("ws")
    return ws["open_now"] if isinstance(ws, dict) else None


def _drift(first: float, last: float) -> float:
    return (last - first) / first if first else 0.0


def process_drift(samples: list[dict[str, Any]], warmup_s: float) -> dict[str, Any]:
    rss: dict[str, float] = {}
    fds: dict[str, float] = {}
    for (name, pid), points in _series(samples, warmup_s).items():
        if name == "redis" or len(points) < 2:
            continue  # Redis memory is judged by the model below
        label = f"{name}/{pid}"
        rss[label] = round(_drift(points[0]["rss_mb"], points[-1]["rss_mb"]), 4)
        fds[label] = round(_fd_drift(points), 4)
    return {"rss": rss, "fds": fds}


def _fd_drift(points: list[dict[str, Any]]) -> float:
    first = points[0]
    if first["ws_open"] is None:
        return _drift(first["fds"], points[-1]["fds"])
    # Compare with the last sample that had as many clients connected (±1%).
    alike = [
        p
        for p in points
        if p["ws_open"] is not None
        and abs(p["ws_open"] - first["ws_open"]) <= max(1, first["ws_open"] // 100)
    ]
    return _drift(first["fds"], alike[-1]["fds"])


def memory_model(samples: list[dict[str, Any]], warmup_s: float) -> dict[str, Any]:
    points = [
        (s["acked"], s["used_memory"])
        for s in samples
        if s["elapsed_s"] >= warmup_s and "used_memory" in s
    ]
    if len(points) < 4:
        return {"fitted": False, "worst_error": 0.0}
    half = len(points) // 2
    fit = points[:half]
    n = len(fit)
    mean_x = sum(x for x, _ in fit) / n
    mean_y = sum(y for _, y in fit) / n
    var = sum((x - mean_x) ** 2 for x, _ in fit)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in fit) / var if var else 0.0
    base = mean_y - slope * mean_x
    later = points[half:]
    errors = [abs(y - (base + slope * x)) / (base + slope * x) for x, y in later]
    return {
        "fitted": True,
        "bytes_per_acked_message": round(slope, 1),
        "base_bytes": round(base),
        "worst_error": round(max(errors), 4),
    }


def verdict(result: dict[str, Any], warmup_s: float) -> dict[str, Any]:
    samples = result["samples"]
    drift = process_drift(samples, warmup_s)
    pel_max = max((s.get("pel", 0) for s in samples), default=0)
    model = memory_model(samples, warmup_s)
    checks = {
        "ledger_zero": all(v == 0 for v in result["violations"].values()),
        "rss_drift_ok": all(v < RSS_DRIFT for v in drift["rss"].values()),
        "fds_stable": all(abs(v) <= FD_DRIFT for v in drift["fds"].values()),
        "pel_ok": pel_max < PEL_MAX,
        "memory_model_ok": model["worst_error"] <= MEMORY_MODEL_ERROR,
    }
    return {
        "pass": all(checks.values()),
        "checks": checks,
        "warmup_s": warmup_s,
        "pel_max": pel_max,
        "drift": drift,
        "memory_model": model,
    }
