"""An accumulating model's state reprojected and folded on the CPU, its still pixels copied (Numba).

A pixel whose motion is exactly zero reads its own block of the state at
whole positions: bilinear and bicubic weights are then one and zeros, so
its fold is a copy (``pixel_unshuffle``), bit for bit what ``cv2.remap``
writes. A still camera (the case where a jittered renderer's samples
converge) and the rows of a still background above or below what moves cost
a copy instead of a resampling: at x4 a bicubic ``remap`` of the four
interleaved planes is about 8 ms at 320x180 input (2-core Zen 4), the copy a
fraction of that. Rows where anything moves are resampled whole, by one
``remap`` over maps of those rows only. (A list of the moving pixels alone,
resampled and scattered back, cost as much as it saved where half the frame
was still: the scatter is a pass of its own.)
"""

from __future__ import annotations

import numpy as np

from upscaler.runtime.accum_cpu import launch
from upscaler.runtime.stream import Scratch, fold_reproject_interleaved, remap_blocks

__all__ = ["fold_reproject_still", "warm"]

from numba import njit, prange  # after ``accum_cpu``: it sets Numba's threading layer and cache before Numba loads


@njit(parallel=True, fastmath=True, cache=True)
def _fold_rows(history, rows, s, out):
    """``out`` (Cs² x H x W, planar folded) at each of ``rows``: the state's blocks (``history``, sH x sW x C)
    as they are (the row's motion is zero)."""
    s2, channels, w = s * s, history.shape[2], out.shape[2]
    for r in prange(rows.shape[0]):
        y = rows[r]
        for i in range(s):
            src = history[y * s + i]
            for j in range(s):
                for c in range(channels):
                    dst = out[c * s2 + i * s + j, y]
                    for x in range(w):
                        dst[x] = src[x * s + j, c]


@njit(parallel=True, fastmath=True, cache=True)
def _unpack_rows(warped, r0, rows, out):
    """``out`` (Cs² x H x W) at ``rows``: map rows ``r0`` on, resampled (``warped``, a block of them, ``n x W x
    C``; map row ``r`` holds sub-pixel ``r // len(rows)`` of row ``rows[r % len(rows)]``)."""
    n, channels = rows.shape[0], warped.shape[2]
    s2 = out.shape[0] // channels
    for b in prange(warped.shape[0]):
        q, y = (r0 + b) // n, rows[(r0 + b) % n]
        for c in range(channels):
            dst, src = out[c * s2 + q, y], warped[b, :, c]
            for x in range(dst.shape[0]):
                dst[x] = src[x]


def fold_reproject_still(
    history: np.ndarray, motion: np.ndarray, scale: int, out: np.ndarray, scratch: Scratch, mode: str, threads: int
) -> np.ndarray:
    """``stream.fold_reproject_interleaved``'s planes (``Cs² x H x W``, the same values bit for bit) of
    ``history`` (``sH x sW x C``) by ``motion`` (``2 x H x W``): rows whose motion is zero copied, the others
    resampled (all of them at once where every row moves)."""
    moves = ((motion[0] != 0) | (motion[1] != 0)).any(axis=1)
    if moves.all():
        return fold_reproject_interleaved(history, motion, scale, out, scratch, mode)
    s, h, w = scale, *motion.shape[1:]
    planes = out.reshape(history.shape[2] * s * s, h, w)
    launch(threads, _fold_rows, history, np.flatnonzero(~moves).astype(np.int32), s, planes)
    if moves.any():
        _fold_moving(history, motion, s, np.flatnonzero(moves).astype(np.int32), planes, scratch, mode, threads)
    return out


def _fold_moving(history, motion, s, rows, planes, scratch: Scratch, mode: str, threads: int) -> None:
    """``planes`` at ``rows``: the state resampled by ``remap`` over maps of those rows only (``s²`` stacks of
    them), in blocks unpacked into place."""
    n, w = rows.size, motion.shape[2]
    sub = np.arange(s, dtype=np.float32)
    map_x, map_y = scratch.take("map_x", (s, s, n, w)), scratch.take("map_y", (s, s, n, w))
    columns = np.arange(w, dtype=np.float32) * s + sub[:, None]  # (j, x): s x + j, exact
    np.add(columns[None, :, None, :], (motion[0, rows] * np.float32(s))[None, None], out=map_x)
    lines = rows.astype(np.float32) * s + sub[:, None]  # (i, row): s y + i, exact
    np.add(lines[:, None, :, None], (motion[1, rows] * np.float32(s))[None, None], out=map_y)
    for r0, _, warped in remap_blocks(history, map_x.reshape(-1, w), map_y.reshape(-1, w), scratch, mode):
        launch(threads, _unpack_rows, warped, r0, rows, planes)


def warm() -> None:
    """Compile the kernels now (or load them from Numba's cache), as ``accum_cpu.warm``."""
    history, motion = np.zeros((4, 6, 4), np.float32), np.zeros((2, 2, 3), np.float32)
    motion[:, 0, 0] = 0.5
    fold_reproject_still(history, motion, 2, np.zeros((16, 2, 3), np.float32), Scratch(), "linear", 1)
