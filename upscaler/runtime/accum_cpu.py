"""The accumulating models' weighted mean and shown frame on the CPU, each one fused pass (Numba).

``AccumSR.combine`` is a dozen element-wise operators over ``3s²`` planes; as
ONNX Runtime operators they took half the CPU step (each a pass over memory
the size of the output frame), and written out as one loop they take a
fraction of that. The network (``AccumSR.coefficients``) and the display
filters stay ONNX graphs (convolutions, which ONNX Runtime does well); these
kernels take what the graphs give:

- ``combine``: the new colour, folded (what the display filters read), and
  the state's planes at high resolution (colour, accumulated weight, depth)
  from the frame, the reprojected colour and the network's weights.
- ``show``: one display filter's output per low-resolution pixel, chosen by
  its motion, unfolded into the shown frame (float planes, or the 8-bit
  frame ``TemporalUpscaler`` returns, in the same pass).

Kernels run on up to the engine's thread count, one call at a time (``_LOCK``: Numba's
``workqueue`` layer, chosen here unless the environment names another, takes
no concurrent launches; it does not keep threads spinning between calls as
OpenMP does, which slowed ONNX Runtime's next run). They are compiled on first
use (a few seconds) and cached for later processes (beside this file, or in the
temporary folder where the install is read-only; ``NUMBA_CACHE_DIR`` overrides).
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

import numpy as np

__all__ = ["combine", "kernel_threads", "show", "warm"]

if "NUMBA_THREADING_LAYER" not in os.environ:
    os.environ["NUMBA_THREADING_LAYER"] = "workqueue"
if "NUMBA_CACHE_DIR" not in os.environ and not os.access(Path(__file__).parent, os.W_OK):
    # the compiled kernels are cached beside this file, or where a read-only install (a container) can write
    os.environ["NUMBA_CACHE_DIR"] = str(Path(tempfile.gettempdir()) / "upscaler-numba")

import numba
from numba import njit, prange

_LOCK = threading.Lock()


def kernel_threads(threads: int | None) -> int:
    """The kernels' thread count for an engine asked for ``threads`` (None: every core Numba sees)."""
    most = numba.config.NUMBA_NUM_THREADS
    return most if threads is None else max(1, min(int(threads), most))


@njit(parallel=True, fastmath=True, cache=True)
def _mean(padded, colour, history_weight, splat_weight, base_weight, scale, correction, kernels, s, result):
    """``result`` (3s² x H x W): the clamped weighted mean, one sub-pixel plane's row per task."""
    h, w = padded.shape[1] - 2, padded.shape[2] - 2
    s2 = s * s
    zero, one = np.float32(0.0), np.float32(1.0)
    for task in prange(h * s2):
        y, k = task // s2, task % s2
        b0, b1, b2, b3, b4, b5, b6, b7, b8 = kernels[0, k]
        p0, p1, p2, p3, p4, p5, p6, p7, p8 = kernels[1, k]
        a, b, e, f = history_weight[k, y], splat_weight[k, y], base_weight[k, y], scale[k, y]
        for c in range(3):
            r0, r1, r2 = padded[c, y], padded[c, y + 1], padded[c, y + 2]
            history, fix, out = colour[c * s2 + k, y], correction[c * s2 + k, y], result[c * s2 + k, y]
            for x in range(w):
                v0, v1, v2, v3, v4 = r0[x], r0[x + 1], r0[x + 2], r1[x], r1[x + 1]
                v5, v6, v7, v8 = r1[x + 2], r2[x], r2[x + 1], r2[x + 2]
                base = b0 * v0 + b1 * v1 + b2 * v2 + b3 * v3 + b4 * v4 + b5 * v5 + b6 * v6 + b7 * v7 + b8 * v8
                splat = p0 * v0 + p1 * v1 + p2 * v2 + p3 * v3 + p4 * v4 + p5 * v5 + p6 * v6 + p7 * v7 + p8 * v8
                v = a[x] * history[x] + b[x] * splat + e[x] * base + f[x] * fix[x]
                out[x] = min(max(v, zero), one)


@njit(parallel=True, fastmath=True, cache=True)
def _unfold_state(result, gathered, depth, s, state):
    """``state`` (5 x sH x sW): colour from ``result``, the weight from ``gathered`` (s² x H x W), ``depth``
    (H x W) repeated over each block."""
    h, w = depth.shape
    s2 = s * s
    for row in prange(h * s):
        y, i = row // s, row % s
        for j in range(s):
            k = i * s + j
            for c in range(3):
                src, dst = result[c * s2 + k, y], state[c, row]
                for x in range(w):
                    dst[x * s + j] = src[x]
            src, dst, d = gathered[k, y], state[3, row], depth[y]
            for x in range(w):
                dst[x * s + j] = src[x]
                state[4, row, x * s + j] = d[x]


@njit(parallel=True, fastmath=True, cache=True)
def _show(moving, still, motion, pick, s, out):
    """``out`` (3 x sH x sW), clamped: ``moving`` (3s² x H x W) where ``pick`` is 0, ``still`` where it is 1,
    and where it is 2, per pixel by its motion (exactly zero: ``still``)."""
    h, w = motion.shape[1:]
    s2 = s * s
    zero, one = np.float32(0.0), np.float32(1.0)
    for row in prange(h * s):
        y, i = row // s, row % s
        for x in range(w):
            rest = pick == 1 or (pick == 2 and motion[0, y, x] == 0.0 and motion[1, y, x] == 0.0)
            src = still if rest else moving
            for c in range(3):
                for j in range(s):
                    out[c, row, x * s + j] = min(max(src[c * s2 + i * s + j, y, x], zero), one)


@njit(parallel=True, fastmath=True, cache=True)
def _show8(moving, still, motion, pick, s, out):
    """``_show`` into ``out`` (sH x sW x 3 uint8), times 255 rounded to nearest (ties to even, as OpenCV)."""
    h, w = motion.shape[1:]
    s2 = s * s
    zero, one, full = np.float32(0.0), np.float32(1.0), np.float32(255.0)
    for row in prange(h * s):
        y, i = row // s, row % s
        for x in range(w):
            rest = pick == 1 or (pick == 2 and motion[0, y, x] == 0.0 and motion[1, y, x] == 0.0)
            src = still if rest else moving
            for j in range(s):
                for c in range(3):
                    v = min(max(src[c * s2 + i * s + j, y, x], zero), one)
                    out[row, x * s + j, c] = np.uint8(np.rint(v * full))


def combine(frame, colour, coefficients, scale: int, depth, state, result, threads: int) -> None:
    """The new state from one step: ``frame`` (3 x H x W), the reprojected ``colour`` (3s² x H x W, folded),
    the folded graph's outputs without their batch axis (``AccumSR.coefficients``' and its kernels: the weights of the
    history, the splat and the base, the correction's scale, the correction, the new accumulated weight and
    the frame's bilinear and splat ``kernels``, 2 x s² x 9), ``depth`` (H x W; zeros without). Writes
    ``result`` (3s² x H x W, the new colour folded) and ``state`` (5 x sH x sW)."""
    *weights, gathered, kernels = coefficients
    padded = np.pad(frame, ((0, 0), (1, 1), (1, 1)), mode="edge")
    with _LOCK:
        numba.set_num_threads(threads)
        _mean(padded, colour, *weights, kernels, scale, result)
        _unfold_state(result, gathered, depth, scale, state)


def show(moving, still, motion, pick: int, scale: int, out, threads: int) -> None:
    """``out``: the shown frame from the display filters' outputs (``3s² x H x W`` each, folded); ``pick`` 0:
    ``moving`` everywhere, 1: ``still`` everywhere, 2: per pixel, ``still`` where ``motion`` (2 x H x W) is
    exactly zero. ``out`` is ``3 x sH x sW`` float32, or ``sH x sW x 3`` uint8 (times 255, rounded: the
    8-bit frame in the same pass)."""
    kernel = _show8 if out.dtype == np.uint8 else _show
    with _LOCK:
        numba.set_num_threads(threads)
        kernel(moving, still, motion, pick, scale, out)


def warm() -> None:
    """Compile the kernels now (or load them from Numba's cache): the first frame then does not wait for it.
    Engines call it as they load; an image build can call it to ship the compiled kernels."""
    s, h, w = 2, 2, 3  # one signature serves every scale and size
    frame, kernels = np.zeros((3, h, w), np.float32), np.zeros((2, s * s, 9), np.float32)
    planes = [np.zeros((k * s * s, h, w), np.float32) for k in (1, 1, 1, 1, 3, 1)]
    result, state = np.zeros((3 * s * s, h, w), np.float32), np.zeros((5, h * s, w * s), np.float32)
    combine(frame, result, [*planes, kernels], s, np.zeros((h, w), np.float32), state, result, 1)
    show(result, result, np.zeros((2, h, w), np.float32), 2, s, state[:3], 1)
    show(result, result, np.zeros((2, h, w), np.float32), 2, s, np.zeros((h * s, w * s, 3), np.uint8), 1)
