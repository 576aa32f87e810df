"""The one protocol every inference engine implements."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from upscaler.models import ModelDescriptor, ModelError

__all__ = [
    "PRECISIONS",
    "Engine",
    "EngineOptions",
    "EngineUnavailable",
    "check_batch",
    "choose_precision",
    "require_file",
    "require_graph",
    "tensorrt_graph",
    "user_cache_dir",
]

#: Every precision an engine may run in.
PRECISIONS = ("fp32", "fp16", "int8")


def user_cache_dir() -> Path:
    """Where engines keep what they measure or build: ``$UPSCALER_CACHE_DIR``, else ``$XDG_CACHE_HOME/upscaler``."""
    if os.environ.get("UPSCALER_CACHE_DIR"):
        return Path(os.environ["UPSCALER_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "upscaler"


class EngineUnavailable(RuntimeError):
    """This engine cannot run here: a library, file or device is missing."""


@runtime_checkable
class Engine(Protocol):
    """Runs a network on batches: ``N x 3 x H x W`` float32 in [0, 1] -> ``N x 3 x sH x sW``.

    Outputs are not clamped; post-processing does that once, after blending.
    An engine may also offer ``run_rgb8(frames, multiple)`` (``N x H x W x 3``
    uint8 in and ``N x sH x sW x 3`` uint8 out, converted where it runs: the
    PyTorch engines do); ``Upscaler`` sends whole 8-bit frames that way.
    """

    name: str  #: engine kind, e.g. ``onnxruntime-cpu`` or ``torch-cpu``
    device: str  #: where it runs, e.g. ``cpu`` or ``cuda:0``
    precision: str  #: ``fp32``, ``fp16`` or ``int8``
    scale: int  #: output size / input size

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Upscale one batch."""
        ...


@dataclass(frozen=True)
class EngineOptions:
    """How to build an engine; each engine reads what applies to it."""

    threads: int | None = None  #: CPU threads (None: one per core)
    spin: bool = True  #: let ONNX Runtime's CPU threads spin between calls
    precision: str | None = (
        None  #: fp32, fp16 or int8; None or auto: the engine's best (fp16 on GPUs; on the CPU int8 where it pays)
    )
    device_id: int = 0  #: CUDA device
    cache_dir: Path | None = None  #: TensorRT engine and timing caches (None: the user cache folder)

    def __post_init__(self) -> None:
        if self.precision == "auto":  # the spelling users type for "left to the engine"
            object.__setattr__(self, "precision", None)
        if self.precision is not None and self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be at least 1, got {self.threads}")


def choose_precision(engine: str, requested: str | None, supported: tuple[str, ...]) -> str:
    """``requested`` if ``engine`` runs it, its first ``supported`` precision if None; else ``EngineUnavailable``."""
    if requested is None:
        return supported[0]
    if requested not in supported:
        raise EngineUnavailable(f"{engine} does not run {requested} (it runs {', '.join(supported)})")
    return requested


def check_batch(batch: np.ndarray, channels: int = 3) -> np.ndarray:
    """Validate an engine input; returns it as contiguous float32."""
    if batch.ndim != 4 or batch.shape[1] != channels:
        raise ValueError(f"expected a batch N x {channels} x H x W, got shape {batch.shape}")
    if min(batch.shape) < 1:
        raise ValueError(f"empty batch of shape {batch.shape}")
    return np.ascontiguousarray(batch, dtype=np.float32)


def _verified(entry, missing: str) -> Path:
    """``entry``'s checked path; ``EngineUnavailable`` with ``missing`` if there is none, or its own reason."""
    if entry is None:
        raise EngineUnavailable(missing)
    try:
        return entry.verified()
    except ModelError as exc:
        raise EngineUnavailable(str(exc)) from None


def require_file(model: ModelDescriptor, kind: str, missing_hint: str = "") -> Path:
    """The verified path of ``model.<kind>`` (``onnx`` or ``weights``), or ``EngineUnavailable``."""
    what = "ONNX graph" if kind == "onnx" else "safetensors weights"
    hint = f" ({missing_hint})" if missing_hint else ""
    return _verified(getattr(model, kind), f"model {model.name!r} has no {what}{hint}")


def require_graph(model: ModelDescriptor, precision: str) -> Path:
    """The verified ONNX graph of ``model`` for ``precision``, or ``EngineUnavailable`` saying how to make it."""
    if precision == "fp32":
        return require_file(model, "onnx", "export one with 'upscaler export onnx'")
    how = {
        "fp16": "upscaler export onnx --fp16",
        "int8-symmetric": "upscaler export int8 --scheme symmetric",
    }.get(precision, f"upscaler export {precision}")
    return _verified(model.graph(precision), f"model {model.name!r} has no {precision} graph (make one with '{how}')")


def tensorrt_graph(model: ModelDescriptor, precision: str) -> Path:
    """The graph TensorRT builds ``precision`` from: FP32 (FP16 is a builder flag), or the symmetric INT8 graph.

    TensorRT's ONNX parser takes only symmetric INT8 (every zero point 0), so
    INT8 engines come from ``int8-symmetric``, never from the CPU's ``int8``.
    """
    return require_graph(model, "int8-symmetric" if precision == "int8" else "fp32")
