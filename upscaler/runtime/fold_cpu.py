"""An accumulating model's state reprojected and folded on the CPU, one block of sub-pixels at a time (Numba).

Every sub-pixel of a low-resolution pixel's ``s x s`` block moves by that
pixel's motion, so the block reads the state at whole-pixel offsets of one
position: one set of bicubic (or bilinear) weights and one window of
``s + 3`` rows by ``s + 3`` columns serve all ``s²`` sub-pixels. The
resampling is separable: a horizontal pass over each window row, then a
vertical one. The state is interleaved (``sH x sW x 4``: colour and weight),
so a block's row of ``s`` sub-pixels by 4 channels is ``4s`` contiguous
floats, and both passes are four multiply-adds over rows of them (LLVM
vectorises them: the weights stay float32 and the channel count is a
constant, or LLVM leaves the loops scalar). A pixel whose motion is exactly
zero reads its own block at whole positions, where the weights are one and
zeros: it is copied, bit for bit what the resampling gives, and a row with
no motion is copied plane by plane.

OpenCV's ``remap``, which the engine ran before over the interleaved state
(``stream.fold_reproject`` does it plane by plane), computes each
sub-pixel's 16 weights and taps on its own in scalar code, and a split into
planes followed: at x4 that took 1.4 times as long on moving frames and 2.6
times on still ones; at x2, where a block's row is half a vector, it is a
little faster on moving frames (``benchmarks/fold_speed.py``). The two agree
to rounding (about 1e-4 where the state's values change by one per pixel:
``remap``'s maps hold ``s x + j + s m`` rounded to float32, here the
fraction is ``s m``'s own), and both are what the model's ``forward``
(``grid_sample`` with clamped edges) computes, to the same rounding.
"""

from __future__ import annotations

import numpy as np

from upscaler.runtime.accum_cpu import launch, row_pick

__all__ = ["MODES", "fold_reproject_blocks", "warm"]

from numba import njit, prange  # after ``accum_cpu``: it sets Numba's threading layer and cache before Numba loads

#: the state's channels, interleaved: colour and the accumulated weight (a constant: LLVM vectorises the passes)
_CHANNELS = 4

#: the resampling each ``mode`` names (``ModelDescriptor.reproject``), as the kernel's flag
MODES = {"linear": 0, "cubic": 1}


@njit(fastmath=True, cache=True, inline="always")
def _weights(t, cubic):
    """The four taps' weights at fraction ``t`` (taps at -1, 0, 1, 2): Keys' cubic with ``a = -0.75`` (OpenCV's
    and PyTorch's), or bilinear (zero, ``1 - t``, ``t``, zero)."""
    one = np.float32(1.0)
    if not cubic:
        return np.float32(0.0), one - t, t, np.float32(0.0)
    a, u, t1 = np.float32(-0.75), one - t, t + one
    w0 = ((a * t1 - np.float32(5.0) * a) * t1 + np.float32(8.0) * a) * t1 - np.float32(4.0) * a
    w1 = ((a + np.float32(2.0)) * t - (a + np.float32(3.0))) * t * t + one
    w2 = ((a + np.float32(2.0)) * u - (a + np.float32(3.0))) * u * u + one
    return w0, w1, w2, one - w0 - w1 - w2


@njit(fastmath=True, cache=True)
def _across_edge(flat, top, left, wx, n, channels, hx):
    """``hx`` (s + 3 rows of ``n = sC``, flat): the horizontal pass over the window whose corner is ``(top,
    left)`` (state pixels), its taps clamped to the state's edges."""
    rows, cols = flat.shape[0], flat.shape[1] // channels
    w0, w1, w2, w3 = wx
    for r in range(hx.shape[0] // n):
        row = flat[min(max(top + r, 0), rows - 1)]
        for k in range(n):
            x, c = left + k // channels, k % channels
            v0, v1 = row[min(max(x, 0), cols - 1) * channels + c], row[min(max(x + 1, 0), cols - 1) * channels + c]
            v2, v3 = row[min(max(x + 2, 0), cols - 1) * channels + c], row[min(max(x + 3, 0), cols - 1) * channels + c]
            hx[r * n + k] = w0 * v0 + w1 * v1 + w2 * v2 + w3 * v3


@njit(fastmath=True, cache=True)
def _copy_row(flat, s, channels, y, out):
    """``out`` (Cs² x H x W) at row ``y``: the state's blocks as they are, plane by plane (a still row: half
    the time of gathering its blocks first)."""
    s2, w = s * s, out.shape[2]
    for i in range(s):
        src = flat[y * s + i]
        for j in range(s):
            for c in range(channels):
                dst = out[c * s2 + i * s + j, y]
                for x in range(w):
                    dst[x] = src[(x * s + j) * channels + c]


@njit(parallel=True, fastmath=True, cache=True)
def _fold(history, motion, s, cubic, out):
    """``out`` (Cs² x H x W, planar folded): ``history`` (sH x sW x C) reprojected by ``motion`` (2 x H x W),
    a row of blocks per task: each block resampled (or copied) into a row of them, interleaved as the state
    is, then written plane by plane."""
    h, w = motion.shape[1:]
    rows, cols, channels = history.shape[0], history.shape[1], _CHANNELS  # ``fold_reproject_blocks`` checks
    n, s2, span = s * channels, s * s, (s + 3) * channels
    flat = history.reshape(rows, cols * channels)
    limit = np.float32(rows + cols)  # a position beyond it reads the edge: every tap clamped
    for y in prange(h):
        if row_pick(motion, y) == 1:  # no pixel of the row moves
            _copy_row(flat, s, channels, y, out)
            continue
        hx = np.empty((s + 3) * n, np.float32)
        blocks = np.empty((w, s, n), np.float32)
        for x in range(w):
            dx = min(max(motion[0, y, x] * np.float32(s), -limit), limit)
            dy = min(max(motion[1, y, x] * np.float32(s), -limit), limit)
            if dx == 0.0 and dy == 0.0:  # whole positions: the block as it is
                for i in range(s):
                    src, dst = flat[y * s + i, x * n : (x + 1) * n], blocks[x, i]
                    for k in range(n):
                        dst[k] = src[k]
                continue
            fx, fy = np.floor(dx), np.floor(dy)
            top, left = s * y + int(fy) - 1, s * x + int(fx) - 1
            w0, w1, w2, w3 = _weights(dx - fx, cubic)
            if top >= 0 and top + s + 2 < rows and left >= 0 and left + s + 2 < cols:
                for r in range(s + 3):
                    src = flat[top + r, left * channels : left * channels + span]
                    for k in range(n):
                        hx[r * n + k] = (w0 * src[k] + w1 * src[channels + k] + w2 * src[2 * channels + k]
                                         + w3 * src[3 * channels + k])  # fmt: skip
            else:
                _across_edge(flat, top, left, (w0, w1, w2, w3), n, channels, hx)
            w0, w1, w2, w3 = _weights(dy - fy, cubic)
            for i in range(s):
                dst = blocks[x, i]
                for k in range(n):
                    dst[k] = (w0 * hx[i * n + k] + w1 * hx[(i + 1) * n + k] + w2 * hx[(i + 2) * n + k]
                              + w3 * hx[(i + 3) * n + k])  # fmt: skip
        for i in range(s):
            for k in range(n):
                dst = out[(k % channels) * s2 + i * s + k // channels, y]
                for x in range(w):
                    dst[x] = blocks[x, i, k]


def fold_reproject_blocks(
    history: np.ndarray, motion: np.ndarray, scale: int, out: np.ndarray, mode: str, threads: int
) -> np.ndarray:
    """``stream.fold_reproject``'s planes (``4s² x H x W``, the same values to rounding; still pixels bit for
    bit) of a C-contiguous ``history`` (``sH x sW x 4``) by ``motion`` (``2 x H x W``, finite)."""
    if history.shape[2] != _CHANNELS or not history.flags.c_contiguous:
        raise ValueError(f"the state must be C-contiguous, {_CHANNELS} channels interleaved (got {history.shape})")
    launch(threads, _fold, history, motion, scale, MODES[mode], out.reshape(-1, *motion.shape[1:]))
    return out


def warm() -> None:
    """Compile the kernel now (or load it from Numba's cache), as ``accum_cpu.warm``."""
    motion = np.zeros((2, 2, 3), np.float32)
    motion[:, 0, 0] = 0.5
    fold_reproject_blocks(np.zeros((4, 6, 4), np.float32), motion, 2, np.zeros((16, 2, 3), np.float32), "cubic", 1)
