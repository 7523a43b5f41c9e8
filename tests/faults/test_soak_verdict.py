"""The soak's pass criteria (pure): each one fails on the violation it is for."""

from __future__ import annotations

from typing import Any

from tests.faults.soak_verdict import verdict

ZERO = {"lost": 0, "gap": 0}


def samples(
    *, minutes: int = 20, rss_end: float = 50.0, pel_peak: int = 3, jump: float = 1.0
) -> list[dict[str, Any]]:
    out = []
    for n in range(minutes * 2):  # one sample per 30 s
        late = n >= minutes * 3 // 2  # the last quarter: after the model's fit
        out.append(
            {
                "elapsed_s": n * 30,
                "acked": n * 6000,
                "used_memory": int((1e6 + n * 6000 * 400) * (jump if late else 1)),
                "pel": pel_peak if n == 7 else 0,
                "api": {
                    "pid": 1,
                    "rss_mb": rss_end if n == minutes * 2 - 1 else 50.0,
                    "fds": 40,
                },
                "redis": {"pid": 2, "rss_mb": 10.0 + n, "fds": 20},
            }
        )
    return out


def run(sample_list: list[dict[str, Any]], **violations: int) -> dict[str, Any]:
    result = {"samples": sample_list, "violations": {**ZERO, **violations}}
    return verdict(result, warmup_s=300)


def test_a_steady_run_passes() -> None:
    report = run(samples())
    assert report["pass"], report
    assert report["memory_model"]["bytes_per_acked_message"] == 400.0


def test_each_criterion_fails_on_its_violation() -> None:
    assert run(samples(), lost=1)["checks"]["ledger_zero"] is False
    assert run(samples(rss_end=60.0))["checks"]["rss_drift_ok"] is False
    assert run(samples(pel_peak=1000))["checks"]["pel_ok"] is False
    assert run(samples(jump=1.3))["checks"]["memory_model_ok"] is False


def test_redis_rss_is_judged_by_the_memory_model_not_by_drift() -> None:
    report = run(samples())
    assert all(not label.startswith("redis") for label in report["drift"]["rss"])
