"""Scene cuts told from the frames alone: where a temporal upscaler's history stops being worth anything.

What it measures, for each pair of consecutive frames: both are reduced to
luma (BT.601 grey) about ``WIDTH`` pixels wide (area averaging, so noise and
fine texture average out and the cost stays far below a network step), and
the score is the **mean absolute luma difference, in grey levels (0-255),
after the best whole-pixel shift** of one thumbnail against the other within
``REACH`` thumbnail pixels (about 5% of the width, so a pan or a shaking
camera lines up again and scores low, while a new shot does not). A pair is
a cut when its score is at least ``THRESHOLD`` *and* at least ``RATIO``
times the previous pair's score: a cut is a spike, and footage that changes
a lot on every frame (water, confetti, a pan faster than the reach) is not
reset on every frame.

Measured here: a static-camera street clip (people walking) scores at most
3 grey levels; pans of up to ``REACH`` thumbnail pixels score 0; cuts
between unrelated photos score 60-75. A missed cut (two shots that look
alike) costs little, as the temporal models were trained to notice
unsignalled cuts; a false one (a flash) costs one frame without history.

Everything is a deterministic function of the two frames (and the previous
score), so a video split into segments anywhere finds the same cuts inside
each of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import cv2
import numpy as np

__all__ = [
    "RATIO",
    "REACH",
    "THRESHOLD",
    "WIDTH",
    "CutDetector",
    "CutSettings",
    "find_cuts",
    "shifted_difference",
    "thumbnail",
]

#: Thumbnail width (pixels) the frames are compared at.
WIDTH = 64
#: Largest shift (thumbnail pixels, each way) tried to line the two frames up.
REACH = 3
#: Smallest score (mean absolute grey-level difference after the best shift) that may be a cut.
THRESHOLD = 20.0
#: A cut's score is at least this many times the previous pair's.
RATIO = 2.0


@dataclass(frozen=True)
class CutSettings:
    """The detector's parameters (recorded with a video job: another detector finds other cuts)."""

    width: int = WIDTH  #: thumbnail width
    reach: int = REACH  #: shifts tried, each way, in thumbnail pixels
    threshold: float = THRESHOLD  #: grey levels
    ratio: float = RATIO  #: against the previous pair's score
    method: str = "shifted-luma-mad-v1"  #: what is measured (the module docstring)

    def record(self) -> dict:
        """The settings as a plain dict (for JSON)."""
        return asdict(self)


def thumbnail(frame: np.ndarray, width: int = WIDTH) -> np.ndarray:
    """Float32 grey (BT.601, 0-255) of an ``H x W x 3`` RGB frame (uint8, or uint16 scaled), ``width`` wide.

    Frames narrower than ``width`` keep their size.
    """
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame must be H x W x 3 RGB, got shape {frame.shape}")
    h, w = frame.shape[:2]
    small = np.ascontiguousarray(frame)
    if w > width:  # reduced first, in colour: a tenth of the cost of a full-size grey conversion
        small = cv2.resize(small, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(small.astype(np.float32), cv2.COLOR_RGB2GRAY)
    if frame.dtype == np.uint16:
        grey *= np.float32(1 / 257)
    return grey


def shifted_difference(a: np.ndarray, b: np.ndarray, reach: int = REACH) -> float:
    """Mean absolute difference of two same-size thumbnails after the whole-pixel shift (within ``reach``)
    that makes it smallest; only the overlap is compared, so shifts are limited to keep half of each axis."""
    if a.shape != b.shape:
        raise ValueError(f"thumbnails differ in size: {a.shape} and {b.shape}")
    h, w = a.shape
    ry, rx = min(reach, h // 2), min(reach, w // 2)
    best = float("inf")
    for dy in range(-ry, ry + 1):
        for dx in range(-rx, rx + 1):
            near = a[max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)]
            far = b[max(0, -dy) : h + min(0, -dy), max(0, -dx) : w + min(0, -dx)]
            best = min(best, float(cv2.mean(cv2.absdiff(near, far))[0]))
    return best


class CutDetector:
    """Tells, frame by frame, whether a frame starts a new shot (see the module docstring for the measure)."""

    def __init__(self, settings: CutSettings | None = None) -> None:
        self.settings = settings or CutSettings()
        self._previous: np.ndarray | None = None
        self._score = 0.0
        self.last_score: float | None = None  #: the latest pair's score (None: no pair yet)

    def reset(self) -> None:
        """Forget the previous frame: the next one is the first of a stream."""
        self._previous, self._score, self.last_score = None, 0.0, None

    def is_cut(self, frame: np.ndarray) -> bool:
        """Whether ``frame`` starts a new shot against the frame seen before it (False for the first frame,
        and for a frame of another size: the caller resets then anyway)."""
        s = self.settings
        small = thumbnail(frame, s.width)
        previous, self._previous = self._previous, small
        if previous is None or previous.shape != small.shape:
            self._score, self.last_score = 0.0, None
            return False
        score = shifted_difference(previous, small, s.reach)
        cut = score >= s.threshold and score >= s.ratio * self._score
        self._score = self.last_score = score
        return cut


def find_cuts(frames: Iterable[np.ndarray], settings: CutSettings | None = None) -> list[int]:
    """Indices of the frames that start a new shot (never 0) in one stream of frames."""
    detector = CutDetector(settings)
    return [i for i, frame in enumerate(frames) if detector.is_cut(frame)]
