"""The latency benchmark harness behind ``upscaler bench``.

``sweep`` parses what to measure, ``runner`` times it (network-only and
end-to-end with stages, interleaved rounds), ``memory`` measures each
case's host memory in a fresh process, ``peers`` brings OpenCV's resizers
and ``dnn_superres`` networks into the same run, ``report`` makes the
table, markdown and JSON, ``plot`` the PNG, ``http`` loads a running
service.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from upscaler.bench.sweep import SIZE_PRESETS, parse_size
from upscaler.sysinfo import machine_info

__all__ = ["SIZE_PRESETS", "machine_info", "parse_size", "timed"]


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    """Wall times of ``runs`` calls of ``fn``, in milliseconds."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return times
