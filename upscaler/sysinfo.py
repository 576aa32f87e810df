"""What machine this is: recorded with training runs and measurements."""

from __future__ import annotations

import os
import platform
from functools import lru_cache

__all__ = ["cpu_count", "cpu_name", "nvidia_driver"]


@lru_cache(maxsize=1)
def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else the architecture."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_count() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def nvidia_driver() -> str | None:
    """The NVIDIA kernel driver's version line, or None: a cheap check before importing GPU libraries."""
    try:
        with open("/proc/driver/nvidia/version") as fh:
            return fh.readline().strip() or "unknown"
    except OSError:
        pass
    import ctypes.util

    return "libcuda present" if ctypes.util.find_library("cuda") else None
