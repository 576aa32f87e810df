"""Still-camera hold: where a jittered camera has stood still and the picture has not changed, keep the history.

On a still camera every jittered frame brings new sub-pixel samples of the same
picture, and the best answer is to keep them all (a plain accumulation does,
and converges). The accumulating models' networks hedge: where jittered samples
of fine, aliased detail disagree with what the history predicts, as they do
in a fade, they drop part of the history every frame, and settle on a window
of about ten frames (``benchmarks/keep_by_detail.py``). A still camera needs
no guess: the caller's motion vectors say it is still, and whether the
picture changed can be tested. ``StillHold`` marks the low-resolution pixels
whose history a step should keep whole; the model adds its ``hold`` to their
keep logit (``AccumSR``), so the network's own rejection is overruled there
and nowhere else. A pixel is held when all of these hold:

- **still**: its motion and its 3 x 3 neighbours' have been exactly zero for
  ``AGE`` frames (a layer that just moved off it, or next to it, is not);
- **jittered**: this frame's jitter differs from the previous frame's (an
  unjittered stream has nothing new to gather, and its history is the same
  samples again);
- **the frame is unchanged**: over the still pixels, the median of the
  luma disagreement between the frame and what the history predicts at its
  samples, averaged over ``REACH`` pixels each way, is at most
  ``FRAME_CHANGE``. Aliasing disagrees pixel by pixel with both signs and
  averages out; a fade, an exposure change or a cut moves a whole
  neighbourhood one way (measured: still shots stay under 0.005 in steady
  state, a fade from black or a cut far above);
- **the pixel is unchanged**: its own averaged disagreement is at most
  ``LOCAL_CHANGE``, and its mean absolute disagreement over 3 x 3 pixels has
  not jumped above ``JUMP_RATIO`` times its own running level plus
  ``JUMP_FLOOR`` (a screen in a still scene changing its picture: the jump
  also restarts the pixel's age, so the network gets the frames it needs to
  drop the old picture).

Everything but reading the state is at low resolution: at 320x180 (Zen 4)
about 0.2 ms on a moving frame, 1.3-1.9 ms on a still one. The history's
prediction of a frame's samples is read from the state before the step,
where it is (no reprojection: a held pixel and its neighbours did not
move). The ONNX Runtime CPU and PyTorch engines apply it; the engines that
run the whole step as one graph (ONNX Runtime's CUDA provider, TensorRT)
do not yet: that graph has no input for it, so a backend chain passes over
them for a model with a hold (``runtime.select.drops_hold``).
"""

from __future__ import annotations

import cv2
import numpy as np

from upscaler.archs import LUMA
from upscaler.runtime.accum_cpu import launch

__all__ = [
    "AGE", "FRAME_CHANGE", "JUMP_FLOOR", "JUMP_RATIO", "LOCAL_CHANGE", "REACH", "StillHold", "disagreement", "warm",
]  # fmt: skip

from numba import njit, prange  # after ``accum_cpu``: it sets Numba's threading layer and cache before Numba loads

#: Frames a pixel and its 3 x 3 neighbours must have had exactly zero motion to be held.
AGE = 2
#: Pixels each way the signed luma disagreement is averaged over (a (2 REACH + 1)² box).
REACH = 2
#: The largest median averaged disagreement over the still pixels of a frame that holds (luma, 0-1).
FRAME_CHANGE = 0.012
#: The largest averaged disagreement a held pixel may show (luma, 0-1).
LOCAL_CHANGE = 0.1
#: A pixel whose 3 x 3 mean absolute disagreement exceeds this many times its running level ...
JUMP_RATIO = 2.5
#: ... plus this (luma, 0-1) has changed: it starts again.
JUMP_FLOOR = 0.01
#: How much of its running level a pixel keeps each frame (the rest is this frame's).
LEVEL_KEEP = 0.8

_BOX = np.ones((3, 3), np.uint8)


@njit(parallel=True, fastmath=True, cache=True)
def _disagreement(state, frame, own, scale, motion, out):
    h, w = out.shape
    l0, l1, l2 = np.float32(LUMA[0]), np.float32(LUMA[1]), np.float32(LUMA[2])
    total = np.float32(0.0)
    for k in range(own.shape[0]):
        total += own[k]
    inverse = np.float32(1.0) / total
    for y in prange(h):
        for x in range(w):
            if motion[0, y, x] != 0 or motion[1, y, x] != 0:
                out[y, x] = np.float32(0.0)
                continue
            acc = np.float32(0.0)
            for i in range(scale):
                sy = scale * y + i
                for j in range(scale):
                    sx = scale * x + j
                    acc += own[i * scale + j] * (l0 * state[sy, sx, 0] + l1 * state[sy, sx, 1] + l2 * state[sy, sx, 2])
            out[y, x] = l0 * frame[0, y, x] + l1 * frame[1, y, x] + l2 * frame[2, y, x] - acc * inverse


def disagreement(state: np.ndarray, frame: np.ndarray, own: np.ndarray, scale: int, motion: np.ndarray,
                 out: np.ndarray, threads: int = 1) -> np.ndarray:  # fmt: skip
    """``out`` (H x W float32): the luma of ``frame`` (3 x H x W float32) less what a state (``sH x sW x C``,
    colour first, float32) predicts for each low-resolution pixel's sample (its block's sub-pixels weighted by
    ``own``, the ``s²`` splat weights of the block's own sample: ``AccumSR``'s ``_predicted``); 0 where
    ``motion`` (2 x H x W) is not zero (the hold reads only still pixels). On up to ``threads`` threads."""
    launch(threads, _disagreement, state, frame, np.ascontiguousarray(own, np.float32), scale, motion, out)
    return out


def warm() -> None:
    """Compile the kernel now (or load it from Numba's cache), as ``accum_cpu.warm`` does its own."""
    two = np.zeros((2, 2, 2), np.float32)
    disagreement(np.zeros((4, 4, 4), np.float32), np.zeros((3, 2, 2), np.float32), np.ones(4, np.float32), 2, two,
                 np.zeros((2, 2), np.float32))  # fmt: skip


def _box(plane: np.ndarray, reach: int) -> np.ndarray:
    return cv2.blur(plane, (2 * reach + 1, 2 * reach + 1), borderType=cv2.BORDER_REPLICATE)


class StillHold:
    """One stream's hold (the module docstring): ``step`` once per frame, before the model's step."""

    def __init__(self) -> None:
        self._age: np.ndarray | None = None  #: H x W: frames still (3 x 3), uint16
        self._level: np.ndarray | None = None  #: H x W: running 3 x 3 mean absolute disagreement
        self._jitter: tuple[float, float] | None = None

    def step(self, measure, motion: np.ndarray, jitter, fresh: bool) -> np.ndarray | None:
        """H x W float32 (1: held) for this frame, or None where no pixel is held. ``measure()``: the frame's luma
        minus the history's prediction where the pixel is still, 0 where it moves (H x W float32; called only when
        some pixel may be held, never on a fresh frame), ``motion`` 2 x H x W, ``jitter`` this frame's, ``fresh``:
        the stream starts here."""
        still = ((motion[0] == 0) & (motion[1] == 0)).astype(np.uint8)
        still = cv2.erode(still, _BOX, borderType=cv2.BORDER_REPLICATE)
        previous, self._jitter = self._jitter, (float(jitter[0]), float(jitter[1]))
        started = not fresh and self._age is not None and self._age.shape == still.shape
        if started and not still.any():
            self._age[:] = 0  # a moving camera: nothing to hold, nothing more to measure
            return None
        if not started:
            self._age, self._level = still.astype(np.uint16), None
            return None
        disagreement = measure()
        level = _box(np.abs(disagreement), 1)
        if self._level is None:
            self._level = level
        jump = cv2.dilate((level > JUMP_RATIO * self._level + JUMP_FLOOR).astype(np.uint8), _BOX)
        self._age = np.where((still > 0) & (jump == 0), np.minimum(self._age, 1000) + 1, 0).astype(np.uint16)
        self._level = np.where(self._age <= 1, level, LEVEL_KEEP * self._level + (1 - LEVEL_KEEP) * level)
        if previous is None or previous == self._jitter:
            return None
        return self._held(np.abs(_box(disagreement, REACH)), still > 0)

    def _held(self, change: np.ndarray, still: np.ndarray) -> np.ndarray | None:
        """The hold from the averaged disagreement's size (``change``) and the still pixels' mask."""
        count = np.count_nonzero(still)  # the median of ``change`` over them is at most FRAME_CHANGE when
        if not count or 2 * np.count_nonzero((change > FRAME_CHANGE) & still) > count:  # half are
            return None
        held = (self._age >= AGE) & (change <= LOCAL_CHANGE)
        return held.astype(np.float32) if held.any() else None
