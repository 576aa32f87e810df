"""Latency measurement: network-only and end-to-end, several models side by side.

Cases run in rounds (a block of timed calls per case per round) so that slow
drift on a noisy machine touches every case alike; the figures are medians
and percentiles of the per-call wall times.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from upscaler.facade import Upscaler
from upscaler.pipeline import to_float
from upscaler.sysinfo import cpu_count, cpu_name

__all__ = ["CaseResult", "machine_info", "measure", "parse_size", "timed"]


@dataclass
class CaseResult:
    """Timings of one model at one input size (milliseconds)."""

    model: str
    engine: str
    precision: str
    threads: int | None
    width: int
    height: int
    batch: int = 1  #: frames per call
    network_ms: list[float] = field(default_factory=list)
    end_to_end_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict:
        """Medians, p95, frames per second and output megapixels per second."""
        out = {k: v for k, v in asdict(self).items() if not k.endswith("_ms")}
        for key in ("network_ms", "end_to_end_ms"):
            values = np.asarray(getattr(self, key))
            median = float(np.median(values))
            out[key.replace("_ms", "")] = {
                "median_ms": round(median, 2),
                "p95_ms": round(float(np.percentile(values, 95)), 2),
                "fps": round(1000.0 * self.batch / median, 1),
                "runs": len(values),
            }
        return out


def parse_size(text: str) -> tuple[int, int]:
    """``"320x180"`` -> ``(320, 180)``."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"size must look like 320x180, got {text!r}") from None
    if w < 1 or h < 1:
        raise ValueError(f"size must be positive, got {text!r}")
    return w, h


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    """Wall times of ``runs`` calls of ``fn``, in milliseconds."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def measure(
    models: Sequence[str],
    size: tuple[int, int],
    *,
    backend: str = "onnxruntime",
    threads: int | None = None,
    rounds: int = 5,
    runs: int = 10,
    warmup: int = 3,
    seed: int = 0,
    precisions: Sequence[str | None] = (None,),
    batches: Sequence[int] = (1,),
    spin: bool = True,
) -> list[CaseResult]:
    """Time each model (in each precision, at each batch size) on random ``size`` frames.

    Network: the engine alone on a prepared batch. End-to-end:
    ``Upscaler.upscale_batch`` from uint8 frames to uint8 frames. Engines
    return host arrays, so each timing includes the device's completion.

    ``spin=False`` keeps ONNX Runtime's idle threads from spinning, so
    several engines in one process do not slow each other down.
    """
    w, h = size
    frame = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    single = np.ascontiguousarray(to_float(frame).transpose(2, 0, 1)[None])
    cases = []
    for name in models:
        for precision in precisions:
            up = Upscaler(name, backend, tile=0, threads=threads, precision=precision, spin=spin)
            for n in batches:
                if n < 1:
                    raise ValueError(f"batch sizes must be at least 1, got {n}")
                result = CaseResult(up.model.name, up.engine.name, up.engine.precision, threads, w, h, n)
                cases.append((up, np.repeat(single, n, axis=0), [frame] * n, result))
            for _ in range(warmup):
                up.upscale(frame)
    for _ in range(rounds):
        for up, batch, frames, result in cases:
            up.batch_size = result.batch
            result.network_ms += timed(lambda up=up, batch=batch: up.engine.run(batch), runs)
            result.end_to_end_ms += timed(lambda up=up, frames=frames: up.upscale_batch(frames), runs)
    return [case[-1] for case in cases]


def machine_info() -> dict:
    """Where the figures were taken."""
    info = {"cpu": cpu_name(), "cores": cpu_count(), "python": platform.python_version()}
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    return info
