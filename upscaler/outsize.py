"""Any output size: run the model whose scale is the smallest at or above the request, then resample.

``--outscale 3`` runs an x4 model and reduces its output to 3x; ``--outscale 1.5`` runs the x2 sibling of
the model asked for (``x4-fast`` -> ``x2-fast``) where one exists; ``--width 1920`` keeps the aspect ratio.
The reduction is antialiased (OpenCV's area filter, which averages every source pixel a target pixel
covers); beyond the model's scale the result is enlarged with bicubic interpolation (nothing new is
inferred there).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["MAX_FACTOR", "OutputSize", "fit", "model_for"]

#: The largest factor asked for: 4x a model's scale of resampling is already all interpolation.
MAX_FACTOR = 16.0


@dataclass(frozen=True)
class OutputSize:
    """What a user asked for: a factor, or a width and/or a height (one alone keeps the aspect ratio)."""

    outscale: float | None = None
    width: int | None = None
    height: int | None = None

    def __post_init__(self) -> None:
        if self.outscale is not None and (self.width is not None or self.height is not None):
            raise ValueError("give an output scale or an output width/height, not both")
        if self.outscale is not None and not 0 < self.outscale <= MAX_FACTOR:
            raise ValueError(f"output scale must be above 0 and at most {MAX_FACTOR:g}, got {self.outscale:g}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"output {name} must be at least 1, got {value}")

    @property
    def given(self) -> bool:
        """Whether anything was asked for (else the model's own size)."""
        return self.outscale is not None or self.width is not None or self.height is not None

    def of(self, width: int, height: int, scale: int) -> tuple[int, int]:
        """The output ``(width, height)`` for a ``width x height`` input (``scale``: the model's, if nothing
        was asked for)."""
        if self.outscale is not None:
            return max(1, round(width * self.outscale)), max(1, round(height * self.outscale))
        if self.width is not None and self.height is not None:
            return self.width, self.height
        if self.width is not None:
            return self.width, max(1, round(height * self.width / width))
        if self.height is not None:
            return max(1, round(width * self.height / height)), self.height
        return width * scale, height * scale

    def tag(self, scale: int) -> str:
        """What an output's name gets without ``-o``: ``_x4``, ``_x1.5``, ``_1920x1080``, ``_w1920``, ``_h1080``."""
        if self.outscale is not None:
            return f"_x{self.outscale:g}"
        if self.width is not None and self.height is not None:
            return f"_{self.width}x{self.height}"
        if self.width is not None:
            return f"_w{self.width}"
        return f"_h{self.height}" if self.height is not None else f"_x{scale}"

    def factor(self, width: int, height: int, scale: int) -> float:
        """How much larger the output is than the input, along its larger ratio; ``ValueError`` past
        ``MAX_FACTOR``."""
        out_w, out_h = self.of(width, height, scale)
        factor = max(out_w / width, out_h / height)
        if factor > MAX_FACTOR:
            raise ValueError(f"{width}x{height} to {out_w}x{out_h} is {factor:g}x; at most {MAX_FACTOR:g}x is taken")
        return factor


def model_for(name: str, factor: float, available: list[str] | None = None) -> str:
    """The model to run for ``factor``: ``name``, or its x2 sibling (``x4-fast`` -> ``x2-fast``) where the
    factor is at most 2 and the sibling is in ``available`` (default: the built-in models)."""
    if available is None:
        from upscaler.models import load_manifest

        available = list(load_manifest()[0])
    if factor <= 2 and name.startswith("x4-") and "x2-" + name[3:] in available:
        return "x2-" + name[3:]
    return name


def fit(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` resampled to ``width x height``: area-averaged (antialiased) where it shrinks, bicubic where
    it grows; the dtype kept (uint8 or uint16), values clamped."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    shrink = width <= w and height <= h
    out = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    if out.ndim == 2 and image.ndim == 3:  # OpenCV drops a single channel's axis
        out = out[..., None]
    return out
