"""Plain temporal accumulation: exact motion, known jitter, no network (the baseline to beat).

Each frame, every low-resolution sample is splatted to the high-resolution
pixels around the point it sampled (a Gaussian of ``sigma`` high-resolution
pixels), the running weighted sum is reprojected by the motion vectors
(colour bicubic, weight bilinear) and the new samples are added; a pixel's
weight is capped at ``cap`` samples, so a moving scene keeps up and a still
one averages up to ``cap`` samples per pixel. Pixels no sample has reached
yet show the first frame upsampled (bilinear). There is no history
rejection: after a cut without ``reset`` the old shot lingers, the failure a
learned model must not have.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["PlainAccumulator", "reprojection_maps", "splat"]

#: Splat radius in high-resolution pixels around each sample's nearest pixel (weights beyond are < e^-8).
_RADIUS = 2


def reprojection_maps(motion: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """``cv2.remap`` maps (``sH x sW``, pixel indices) that reproject a previous HR frame by LR ``motion``.

    HR pixel ``(x, y)`` reads ``(x, y) + scale * motion(x // scale, y // scale)``:
    every HR pixel moves with its LR block, as ``archs.temporal.reproject`` does.
    """
    h, w = motion.shape[:2]
    up = cv2.resize(motion, (w * scale, h * scale), interpolation=cv2.INTER_NEAREST) * np.float32(scale)
    gx, gy = np.meshgrid(np.arange(w * scale, dtype=np.float32), np.arange(h * scale, dtype=np.float32))
    return gx + up[..., 0], gy + up[..., 1]


def splat(lr: np.ndarray, jitter: tuple[float, float], scale: int, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """``(sum of weight x sample, sum of weight)`` at every high-resolution pixel (``sH x sW x 3``, ``sH x sW``).

    Every low-resolution pixel sampled at the same offset (the jitter), so each splat offset is one
    strided slice: ``(2 * radius + 1)²`` array additions whatever the frame's size."""
    s, (h, w) = scale, lr.shape[:2]
    r = _RADIUS
    num = np.zeros((h * s + 2 * r + s, w * s + 2 * r + s, 3), np.float32)
    den = np.zeros(num.shape[:2], np.float32)
    px, py = (0.5 + jitter[0]) * s, (0.5 + jitter[1]) * s  # the sample, HR pixels from its block's corner
    for ky in range(int(np.floor(py)) - r, int(np.floor(py)) + r + 1):
        for kx in range(int(np.floor(px)) - r, int(np.floor(px)) + r + 1):
            weight = np.float32(np.exp(-((kx + 0.5 - px) ** 2 + (ky + 0.5 - py) ** 2) / (2 * sigma * sigma)))
            rows, cols = slice(r + ky, r + ky + h * s, s), slice(r + kx, r + kx + w * s, s)
            num[rows, cols] += weight * lr
            den[rows, cols] += weight
    return num[r : r + h * s, r : r + w * s], den[r : r + h * s, r : r + w * s]


class PlainAccumulator:
    """One stream's accumulation state; ``step`` takes what ``TemporalUpscaler.upscale`` takes."""

    def __init__(self, scale: int, cap: float = 8.0, sigma: float = 0.5) -> None:
        self.scale, self.cap, self.sigma = scale, cap, sigma
        self._mean: np.ndarray | None = None  # sH x sW x 3 float32 in [0, 1]
        self._weight: np.ndarray | None = None  # sH x sW float32: samples gathered

    def reset(self) -> None:
        """Forget the history (a cut)."""
        self._mean = self._weight = None

    def step(
        self, frame: np.ndarray, jitter: tuple[float, float], motion: np.ndarray | None, reset: bool = False
    ) -> np.ndarray:
        """The accumulated high-resolution frame (uint8) after adding ``frame``'s samples."""
        s = self.scale
        h, w = frame.shape[:2]
        lr = frame.astype(np.float32) / 255.0
        if reset or self._mean is None or self._mean.shape[:2] != (h * s, w * s):
            self._mean = cv2.resize(lr, (w * s, h * s), interpolation=cv2.INTER_LINEAR)
            self._weight = np.zeros((h * s, w * s), np.float32)
        elif motion is not None and np.any(motion):
            self._reproject(motion)
        num, den = splat(lr, jitter, s, self.sigma)
        total = self._weight + den
        reached = total > 0
        mean = (self._mean * self._weight[..., None] + num) / np.where(reached, total, 1.0)[..., None]
        self._mean = np.where(reached[..., None], mean, self._mean)
        self._weight = np.minimum(total, self.cap)
        return np.clip(np.floor(self._mean * 255.0 + 0.5), 0, 255).astype(np.uint8)

    def _reproject(self, motion: np.ndarray) -> None:
        mx, my = reprojection_maps(motion, self.scale)
        self._mean = cv2.remap(self._mean, mx, my, interpolation=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        self._weight = cv2.remap(self._weight, mx, my, interpolation=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT)  # fmt: skip
