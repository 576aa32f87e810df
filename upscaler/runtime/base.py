"""The one protocol every inference engine implements."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from upscaler.models import ModelDescriptor, ModelError

__all__ = ["Engine", "EngineUnavailable", "check_batch", "require_file"]


class EngineUnavailable(RuntimeError):
    """This engine cannot run here: a library, file or device is missing."""


@runtime_checkable
class Engine(Protocol):
    """Runs a network on batches: ``N x 3 x H x W`` float32 in [0, 1] -> ``N x 3 x sH x sW``.

    Outputs are not clamped; post-processing does that once, after blending.
    """

    name: str  #: engine kind, e.g. ``onnxruntime-cpu`` or ``torch-cpu``
    device: str  #: where it runs, e.g. ``cpu`` or ``cuda:0``
    precision: str  #: ``fp32``, ``fp16`` or ``int8``
    scale: int  #: output size / input size

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Upscale one batch."""
        ...


def check_batch(batch: np.ndarray, channels: int = 3) -> np.ndarray:
    """Validate an engine input; returns it as contiguous float32."""
    if batch.ndim != 4 or batch.shape[1] != channels:
        raise ValueError(f"expected a batch N x {channels} x H x W, got shape {batch.shape}")
    if min(batch.shape) < 1:
        raise ValueError(f"empty batch of shape {batch.shape}")
    return np.ascontiguousarray(batch, dtype=np.float32)


def require_file(model: ModelDescriptor, kind: str, missing_hint: str = "") -> Path:
    """The verified path of ``model.<kind>`` (``onnx`` or ``weights``), or ``EngineUnavailable``."""
    entry = getattr(model, kind)
    if entry is None:
        what = "ONNX graph" if kind == "onnx" else "safetensors weights"
        raise EngineUnavailable(f"model {model.name!r} has no {what}" + (f" ({missing_hint})" if missing_hint else ""))
    try:
        return entry.verified()
    except ModelError as exc:
        raise EngineUnavailable(str(exc)) from None
