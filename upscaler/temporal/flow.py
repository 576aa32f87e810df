"""Motion vectors when the caller has none: optical flow between consecutive low-resolution frames.

OpenCV's DIS flow (``DISOpticalFlow``, ultrafast preset) on the luma of the
current and previous frame gives, per pixel, where the same content was in
the previous frame: the ``motion`` convention, except that what it sees
includes the change of jitter between the two frames (the whole picture
shifts by ``jitter_now - jitter_before`` when only the sampling moved), so
that is subtracted. The first frame of a stream has no previous one: zero.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["MotionEstimator"]


class MotionEstimator:
    """Estimates ``motion`` for each frame of one stream from the frame before it."""

    def __init__(self) -> None:
        self._dis = None
        self._previous: np.ndarray | None = None
        self._jitter: tuple[float, float] = (0.0, 0.0)

    def reset(self) -> None:
        """Forget the previous frame."""
        self._previous = None

    def remember(self, frame: np.ndarray, jitter: tuple[float, float]) -> None:
        """Keep ``frame`` as the previous one (when the caller brought its own motion)."""
        self._previous, self._jitter = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), jitter

    def estimate(self, frame: np.ndarray, jitter: tuple[float, float]) -> np.ndarray:
        """``H x W x 2`` float32 motion of ``frame`` against the previous frame (zeros for the first)."""
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        previous, before = self._previous, self._jitter
        self._previous, self._jitter = grey, jitter
        if previous is None or previous.shape != grey.shape or min(grey.shape) < 8:
            return np.zeros((*grey.shape, 2), np.float32)
        if self._dis is None:
            self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        flow = self._dis.calc(grey, previous, None)
        flow[..., 0] -= jitter[0] - before[0]
        flow[..., 1] -= jitter[1] - before[1]
        return flow
