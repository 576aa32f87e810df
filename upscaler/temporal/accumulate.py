"""Plain temporal accumulation: exact motion, known jitter, no network (the baseline to beat).

Each frame, the previous high-resolution result is reprojected by the
motion vectors (bilinear), then every new low-resolution sample is blended
into the high-resolution pixel it fell in, with weight ``1 / (n + 1)`` for a
pixel that has gathered ``n`` samples (so a still scene averages its
samples), but never below ``min_weight`` (so a moving one keeps up).
Pixels that no sample reached keep their reprojected value. There is no
history rejection: after a cut without ``reset`` the old shot lingers, the
failure a learned model must not have.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["PlainAccumulator", "reprojection_maps"]


def reprojection_maps(motion: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """``cv2.remap`` maps (``sH x sW``, pixel indices) that reproject a previous HR frame by LR ``motion``.

    HR pixel ``(x, y)`` reads ``(x, y) + scale * motion(x // scale, y // scale)``:
    every HR pixel moves with its LR block, as ``archs.temporal.reproject`` does.
    """
    h, w = motion.shape[:2]
    up = cv2.resize(motion, (w * scale, h * scale), interpolation=cv2.INTER_NEAREST) * np.float32(scale)
    gx, gy = np.meshgrid(np.arange(w * scale, dtype=np.float32), np.arange(h * scale, dtype=np.float32))
    return gx + up[..., 0], gy + up[..., 1]


class PlainAccumulator:
    """One stream's accumulation state; ``step`` takes what ``TemporalUpscaler.upscale`` takes."""

    def __init__(self, scale: int, min_weight: float = 0.1) -> None:
        self.scale, self.min_weight = scale, min_weight
        self._history: np.ndarray | None = None  # sH x sW x 3 float32 in [0, 1]
        self._count: np.ndarray | None = None  # sH x sW float32 samples gathered

    def reset(self) -> None:
        """Forget the history (a cut)."""
        self._history = self._count = None

    def step(
        self, frame: np.ndarray, jitter: tuple[float, float], motion: np.ndarray | None, reset: bool = False
    ) -> np.ndarray:
        """The accumulated high-resolution frame (uint8) after adding ``frame``'s samples."""
        s = self.scale
        h, w = frame.shape[:2]
        lr = frame.astype(np.float32) / 255.0
        if reset or self._history is None or self._history.shape[:2] != (h * s, w * s):
            self._history = cv2.resize(lr, (w * s, h * s), interpolation=cv2.INTER_LINEAR)
            self._count = np.zeros((h * s, w * s), np.float32)
        else:
            if motion is None:
                motion = np.zeros((h, w, 2), np.float32)
            self._history, self._count = self._reproject(motion)
        jx, jy = jitter
        ux = np.clip(np.floor((np.arange(w) + 0.5 + jx) * s).astype(int), 0, w * s - 1)
        uy = np.clip(np.floor((np.arange(h) + 0.5 + jy) * s).astype(int), 0, h * s - 1)
        yy, xx = np.meshgrid(uy, ux, indexing="ij")
        n = self._count[yy, xx]
        weight = np.maximum(1.0 / (n + 1.0), self.min_weight)[..., None]
        self._history[yy, xx] = self._history[yy, xx] * (1 - weight) + lr * weight
        self._count[yy, xx] = n + 1.0
        return np.clip(np.floor(self._history * 255.0 + 0.5), 0, 255).astype(np.uint8)

    def _reproject(self, motion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mx, my = reprojection_maps(motion, self.scale)
        history = cv2.remap(self._history, mx, my, interpolation=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        count = cv2.remap(self._count, mx, my, interpolation=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)
        return history, count
