"""Degradations: how a low-resolution image is made from a high-resolution one.

The evaluation protocol (DESIGN section 4) and training share these, so a
model is measured on exactly the process it was trained to invert.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from upscaler.resize import imresize

__all__ = ["DEGRADATIONS", "bicubic", "degrade", "modcrop", "point_sample", "quantize_uint8"]


def modcrop(image: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right so height and width are multiples of ``scale``."""
    h, w = image.shape[:2]
    return image[: h - h % scale, : w - w % scale]


def quantize_uint8(values: np.ndarray) -> np.ndarray:
    """Round half away from zero and clamp to uint8, as MATLAB does."""
    return np.clip(np.floor(values + 0.5), 0, 255).astype(np.uint8)


def bicubic(hr: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB ``imresize(hr, 1/scale)`` (antialiased bicubic) of a modcropped uint8 image."""
    if hr.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {hr.dtype}")
    if hr.shape[0] % scale or hr.shape[1] % scale:
        raise ValueError(f"image size {hr.shape[:2]} is not a multiple of {scale}; modcrop it first")
    return quantize_uint8(imresize(hr, 1.0 / scale))


def point_sample(hr: np.ndarray, scale: int, phase: tuple[int, int] = (0, 0)) -> np.ndarray:
    """What a renderer without anti-aliasing draws: one HR sample per LR pixel.

    ``phase`` is the sub-pixel offset (rows, columns) of the sample inside each
    ``scale x scale`` cell; the evaluation protocol uses phase 0.
    """
    if hr.shape[0] % scale or hr.shape[1] % scale:
        raise ValueError(f"image size {hr.shape[:2]} is not a multiple of {scale}; modcrop it first")
    if not all(0 <= p < scale for p in phase):
        raise ValueError(f"phase {phase} must lie in [0, {scale})")
    return np.ascontiguousarray(hr[phase[0] :: scale, phase[1] :: scale])


#: Evaluation degradations by name: ``f(hr_uint8, scale) -> lr_uint8``, deterministic.
#: ``render`` is point sampling at phase 0 (DESIGN section 4).
DEGRADATIONS: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {"bicubic": bicubic, "render": point_sample}


def degrade(hr: np.ndarray, scale: int, kind: str = "bicubic") -> np.ndarray:
    """Low-resolution image of a modcropped ``hr`` by the named degradation."""
    try:
        fn = DEGRADATIONS[kind]
    except KeyError:
        raise ValueError(f"unknown degradation {kind!r}; choose from {', '.join(DEGRADATIONS)}") from None
    return fn(hr, scale)
