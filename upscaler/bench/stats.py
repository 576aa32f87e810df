"""Latency statistics: percentiles by linear interpolation (numpy's default), throughput."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

__all__ = ["in_turn", "latency_stats", "percentile"]


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``samples``, linearly interpolated between order statistics."""
    if not len(samples):
        raise ValueError("no samples")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0-100, got {q}")
    return float(np.percentile(np.asarray(samples, dtype=np.float64), q))


def latency_stats(samples_ms: Sequence[float], *, frames: int = 1, output_pixels: int = 0) -> dict:
    """p50, p95, p99, max and mean latency (ms); frames and output megapixels per second at the median."""
    p50 = percentile(samples_ms, 50)
    return {
        "runs": len(samples_ms),
        "p50_ms": round(p50, 3),
        "p95_ms": round(percentile(samples_ms, 95), 3),
        "p99_ms": round(percentile(samples_ms, 99), 3),
        "max_ms": round(float(max(samples_ms)), 3),
        "mean_ms": round(float(np.mean(samples_ms)), 3),
        "fps": round(1000.0 * frames / p50, 2) if p50 > 0 else None,
        "output_mpix_per_s": round(output_pixels * frames / p50 / 1000.0, 2) if p50 > 0 else None,
    }


def in_turn(items: Sequence, rounds: int) -> Iterator[list]:
    """``items`` once per round, each leading a round in turn (side-by-side timing: machine noise hits all)."""
    for r in range(rounds):
        k = r % len(items)
        yield list(items[k:]) + list(items[:k])
