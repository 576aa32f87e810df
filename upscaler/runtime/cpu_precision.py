"""Which precision ONNX Runtime runs on this CPU when the user leaves it to the engine.

INT8 pays on some x86 CPUs and not on others: with AVX-512 VNNI the integer
convolutions run about twice as fast as FP32, with AVX2 alone the gain is
small and the non-convolution work (the final pixel shuffle, quantise and
dequantise) eats most of it. So ``auto`` picks INT8 only where

1. the model ships an INT8 graph whose measured PSNR cost (its release
   report) is within ``MAX_COST`` dB of FP32 on every evaluation set, and
2. this CPU runs it at least ``MIN_SPEEDUP`` times as fast as FP32 (the
   median of interleaved rounds) and faster than FP32 in nearly every round
   (the lower quartile at least ``MIN_FLOOR``), measured once on a 320x180
   frame and cached per machine (CPU model, family and flags, ONNX Runtime
   version, the two graphs' checksums, threads) in the user cache folder.

The frame is the size users run, not a small one: on an AMD Zen 1 EPYC
(AVX2) INT8 ran 1.1-1.25x FP32 on 192x108 frames and 0.95-0.99x on 320x180
and larger, so a probe on small frames chose the slower precision.

``UPSCALER_CPU_PRECISION=fp32`` (or ``int8``) pins the choice without
measuring: reproducible runs, and a test suite that does not depend on how
fast the machine is.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from upscaler.models import ModelDescriptor, sha256_file
from upscaler.runtime.base import user_cache_dir

__all__ = [
    "ENV",
    "MAX_COST",
    "MIN_SPEEDUP",
    "PrecisionChoice",
    "choose_cpu_precision",
    "decide",
    "int8_cost",
]

log = logging.getLogger(__name__)

#: Environment variable that pins the CPU precision (``fp32``, ``int8`` or ``auto``).
ENV = "UPSCALER_CPU_PRECISION"
#: Largest PSNR loss (dB, against FP32) for which INT8 may be chosen without being asked for.
MAX_COST = 0.15
#: INT8 must run at least this many times as fast as FP32 here to be chosen (median of rounds).
MIN_SPEEDUP = 1.2
#: ... and its lower quartile of rounds at least this (a noisy machine's lucky rounds do not decide).
MIN_FLOOR = 1.05
#: Frame the micro-benchmark runs (width, height): the standard frame, as big as users run.
PROBE_SIZE = (320, 180)
_CACHE_VERSION = 2


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision picked for one model on this CPU, and why."""

    precision: str  #: fp32 or int8
    reason: str  #: one line for logs and ``upscaler info``
    speedup: float | None = None  #: INT8 over FP32 measured here, median of rounds (None: not measured)
    floor: float | None = None  #: the lower quartile of the rounds' speed-ups (None: not measured)


def int8_cost(model: ModelDescriptor) -> float | None:
    """The worst PSNR cost of ``model``'s INT8 graph over its evaluation sets (None: never measured)."""
    quality = model.precision_reports.get("int8", {}).get("quality", {})
    costs = [q["psnr_cost"] for q in quality.values() if "psnr_cost" in q]
    return max(costs) if costs else None


def decide(
    cost: float | None,
    speedup: float,
    floor: float | None = None,
    *,
    max_cost: float = MAX_COST,
    min_speedup: float = MIN_SPEEDUP,
    min_floor: float = MIN_FLOOR,
) -> PrecisionChoice:
    """The choice for a measured ``speedup`` (INT8 over FP32, median of rounds; ``floor``: their lower
    quartile) and PSNR ``cost`` (pure: no measuring)."""
    if cost is None or cost > max_cost:
        return PrecisionChoice("fp32", "INT8's PSNR cost is unmeasured or above the bound", speedup, floor)
    if speedup < min_speedup:
        reason = f"INT8 runs only {speedup:.2f}x FP32 on this CPU (needs {min_speedup:.2f}x)"
        return PrecisionChoice("fp32", reason, speedup, floor)
    if floor is not None and floor < min_floor:
        reason = f"INT8 runs {speedup:.2f}x FP32 on this CPU but {floor:.2f}x in its slower rounds"
        reason += f" (needs {min_floor:.2f}x)"
        return PrecisionChoice("fp32", reason, speedup, floor)
    reason = f"INT8 runs {speedup:.2f}x FP32 on this CPU at {cost:.3f} dB cost"
    return PrecisionChoice("int8", reason, speedup, floor)


def choose_cpu_precision(
    model: ModelDescriptor, threads: int | None = None, engine: Callable[[str], Any] | None = None
) -> PrecisionChoice:
    """The precision ``auto`` runs ``model`` in on this CPU (measures once, then reads the cache).

    ``engine(precision)`` builds the engine the measurement runs (``fp32`` and ``int8``, each with a
    ``run(batch)``): the CPU engine passes its own, so this policy imports no engine."""
    pinned = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if pinned in ("fp32", "int8"):
        if pinned == "int8" and model.graph("int8") is None:
            return PrecisionChoice("fp32", f"{ENV}=int8 but {model.name} has no INT8 graph")
        return PrecisionChoice(pinned, f"pinned by {ENV}={pinned}")
    if pinned != "auto":
        log.warning("%s=%s is not fp32, int8 or auto; choosing automatically", ENV, pinned)
    if model.graph("int8") is None or model.onnx is None:
        return PrecisionChoice("fp32", "the model ships no INT8 graph")
    cost = int8_cost(model)
    if cost is None or cost > MAX_COST:
        shown = "unmeasured" if cost is None else f"{cost:.3f} dB"
        return PrecisionChoice("fp32", f"INT8 costs {shown} of PSNR (bound {MAX_COST} dB)")
    try:
        key = _cache_key(model, threads)
    except OSError as exc:
        return PrecisionChoice("fp32", f"model graphs unreadable ({exc})")
    cached = _load(key)
    if cached is not None:
        return cached
    ratios = _measure(model, engine)
    choice = decide(cost, round(float(np.median(ratios)), 2), round(float(np.percentile(ratios, 25)), 2))
    choice = replace(choice, reason=f"{choice.reason} (measured once, cached)")
    _store(key, choice)
    log.info("%s on this CPU: %s", model.name, choice.reason)
    return choice


def _cache_key(model: ModelDescriptor, threads: int | None) -> str:
    from upscaler.sysinfo import cpu_flags, cpu_id, cpu_name, libraries

    fields = {
        "version": _CACHE_VERSION,
        "cpu": cpu_name(),
        "cpu_id": cpu_id(),
        "flags": list(cpu_flags()),
        "onnxruntime": libraries()["onnxruntime"],
        "fp32": sha256_file(model.onnx.path),
        "int8": sha256_file(model.graph("int8").path),
        "threads": threads,
        "min_speedup": MIN_SPEEDUP,
    }
    return json.dumps(fields, sort_keys=True)


def _cache_file() -> Path:
    return user_cache_dir() / "cpu-precision.json"


def _read_cache() -> dict:
    try:
        data = json.loads(_cache_file().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _load(key: str) -> PrecisionChoice | None:
    entry = _read_cache().get(key)
    try:
        return PrecisionChoice(**entry) if entry else None
    except TypeError:  # written by another version: measure again
        return None


def _store(key: str, choice: PrecisionChoice) -> None:
    from upscaler.io import write_atomic

    data = _read_cache()
    data[key] = asdict(choice)
    try:
        _cache_file().parent.mkdir(parents=True, exist_ok=True)
        write_atomic(_cache_file(), json.dumps(data, indent=1))
    except OSError as exc:  # a read-only home: measure again next time, still run
        log.warning("could not cache the CPU precision choice in %s: %s", _cache_file(), exc)


def _measure(
    model: ModelDescriptor, engine: Callable[[str], Any] | None, rounds: int = 6, runs: int = 2
) -> list[float]:
    """Per-round FP32/INT8 time ratios (each round's medians), the two sessions interleaved on one frame."""
    import time

    if engine is None:
        raise ValueError("choosing a CPU precision by measurement needs an engine factory")

    engines = [engine(p) for p in ("fp32", "int8")]
    w, h = PROBE_SIZE
    batch = np.random.default_rng(0).random((1, model.channels, h, w), dtype=np.float32)
    for engine in engines:
        engine.run(batch)
    ratios = []
    for _ in range(rounds):
        medians = []
        for engine in engines:
            times = []
            for _ in range(runs):
                start = time.perf_counter()
                engine.run(batch)
                times.append(time.perf_counter() - start)
            medians.append(float(np.median(times)))
        ratios.append(medians[0] / medians[1])
    return ratios
