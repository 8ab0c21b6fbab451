"""Latency summaries shared by the benchmarks."""

from __future__ import annotations

import statistics


def latency_percentiles(seconds: list[float]) -> dict[str, float]:
    """``{"p50_ms", "p99_ms"}`` of latencies given in seconds (NaN when there are none)."""
    ordered = sorted(seconds)
    if not ordered:
        return {"p50_ms": float("nan"), "p99_ms": float("nan")}
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {"p50_ms": statistics.median(ordered) * 1000, "p99_ms": p99 * 1000}
