"""The accumulating models' weighted mean and shown frame on the CPU, each one fused pass (Numba).

``AccumSR.weigh`` and ``AccumSR.combine`` are two dozen element-wise
operators over ``s²`` and ``3s²`` planes; as ONNX Runtime operators they took
more than half the CPU step (each a pass over memory the size of the output
frame), and written out as one loop they take a fraction of that. The
network's convolutions (``AccumSR.tail_logits``) and 3x3 display filters stay
ONNX graphs (which ONNX Runtime does well); these kernels take what the
graphs give:

- ``combine``: the per-sub-pixel weights (sigmoids, a softplus and an
  exponential in arithmetic LLVM vectorises, ``_exp_neg``), the new colour,
  folded (what the display filters read), and the state's planes at high
  resolution (colour, accumulated weight, depth) from the frame, the
  reprojected state and the network's tail.
- ``depth_gap``: the network's ``apart`` input, where the caller gives depth.
- ``show``: one display filter's output per low-resolution pixel, chosen by
  its motion, unfolded into the shown frame (float planes, or the 8-bit
  frame ``TemporalUpscaler`` returns, in the same pass).
- ``show_filtered``: the same for 1x1 display filters, applied in that pass
  (a graph of their own wrote the filtered colour out for the show to read
  back: more than twice the time), with the luma detail filters' outputs
  (graphs of their own, over ``luma``) added.
- ``luma``: the new colour's luma, folded: what the luma detail filters read.

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

__all__ = [
    "combine", "constants", "depth_gap", "kernel_threads", "launch", "luma", "row_pick", "show", "show_filtered",
    "warm",
]  # fmt: skip

if "NUMBA_THREADING_LAYER" not in os.environ:
    os.environ["NUMBA_THREADING_LAYER"] = "workqueue"
if "NUMBA_CACHE_DIR" not in os.environ and not os.access(Path(__file__).parent, os.W_OK):
    # the compiled kernels are cached beside this file, or where a read-only install (a container) can write
    os.environ["NUMBA_CACHE_DIR"] = str(Path(tempfile.gettempdir()) / "upscaler-numba")

import numba
from numba import njit, prange

from upscaler.archs import GAP_FLOOR, LEAN_FLOOR, LUMA

_LOCK = threading.Lock()


def launch(threads: int, kernel, *args) -> None:
    """Run ``kernel`` on ``args`` with ``threads`` threads, one kernel at a time (``_LOCK``)."""
    with _LOCK:
        numba.set_num_threads(threads)
        kernel(*args)


def kernel_threads(threads: int | None) -> int:
    """The kernels' thread count for an engine asked for ``threads`` (None: every core Numba sees)."""
    most = numba.config.NUMBA_NUM_THREADS
    return most if threads is None else max(1, min(int(threads), most))


@njit(fastmath=True, cache=True, inline="always")
def _exp_neg(x):
    """``exp(x)`` for ``x <= 0``, to 3e-7 relative above -4 (below, float32's rounding of ``x / ln 2``
    dominates: 2e-6 at -41), and ``exp(-41.6)``, 8.7e-19, below -41.6 (every caller adds it to 1 or multiplies a term
    it makes nil). Written in arithmetic LLVM vectorises: libm's ``expf`` is
    a call per element, four times the whole pass."""
    t = max(x * np.float32(1.4426950408889634), np.float32(-60.0))  # x / ln 2
    n = np.floor(t + np.float32(0.5))
    f = (t - n) * np.float32(0.6931471805599453)  # |f| <= ln 2 / 2: Taylor to the 6th power
    p = np.float32(1.0) + f * (np.float32(1.0) + f * (np.float32(0.5) + f * (np.float32(1 / 6) + f * (
        np.float32(1 / 24) + f * (np.float32(1 / 120) + f * np.float32(1 / 720))))))  # fmt: skip
    return p / np.float32(np.int64(1) << np.int64(-n))


@njit(fastmath=True, cache=True, inline="always")
def _sigmoid(z):
    e = _exp_neg(-abs(z))
    return (np.float32(1.0) if z >= 0 else e) / (np.float32(1.0) + e)


@njit(fastmath=True, cache=True, inline="always")
def _softplus(z):
    """``log(1 + exp(z))`` as ``max(z, 0) + log1p(exp(-|z|))``, the log by its series in ``u / (2 + u)``
    (at most 1/3: 7 terms)."""
    u = _exp_neg(-abs(z))
    v = u / (np.float32(2.0) + u)
    v2 = v * v
    series = np.float32(1.0) + v2 * (np.float32(1 / 3) + v2 * (np.float32(1 / 5) + v2 * (np.float32(1 / 7) + v2 * (
        np.float32(1 / 9) + v2 * (np.float32(1 / 11) + v2 * np.float32(1 / 13))))))  # fmt: skip
    return max(z, np.float32(0.0)) + np.float32(2.0) * v * series


@njit(fastmath=True, cache=True)
def _weigh(tail, weight, gain, constants, keepalive, hold, s2, k, y, a, b, e, f, gathered):
    """``AccumSR.weigh`` for sub-pixel ``k`` of row ``y``: the weights of the history (``a``), the splat
    (``b``) and the base (``e``), the correction's scale (``f``) and the new accumulated weight; ``hold`` (H x W)
    marks the pixels whose keep logit gets ``constants[5]``."""
    cap, offset, settle_base, decay, mode = constants[0], constants[1], constants[2], constants[3], constants[4]
    boost, drop = constants[5], np.float32(1.0) - constants[6]
    lr, lm, le, wt, g, held = tail[k, y], tail[s2 + k, y], tail[2 * s2 + k, y], weight[k, y], gain[k], hold[y]
    zero, one = np.float32(0.0), np.float32(1.0)
    for x in range(weight.shape[2]):
        keep = _sigmoid(lr[x] + offset + boost * held[x]) * max(wt[x], zero) * keepalive * cap
        new = _sigmoid(lm[x]) * g
        lean = _softplus(le[x]) + np.float32(LEAN_FLOOR)
        lean = lean / (one + settle_base * keep) * _exp_neg(-decay * keep)
        inverse = one / (keep + new + lean)
        a[x], b[x], e[x] = keep * inverse, new * inverse, lean * inverse
        f[x] = (new + lean) * inverse if mode == 2 else (one / (one + keep) if mode == 1 else one)
        f[x] *= one - drop * held[x]
        gathered[x] = min((keep + new) / cap, one)


@njit(parallel=True, fastmath=True, cache=True)
def _mean(padded, colour, weight, tail, gain, constants, keepalive, hold, kernels, s, result, gathered):
    """``result`` (3s² x H x W): the clamped weighted mean, and ``gathered`` (s² x H x W); a row per task."""
    h, w = padded.shape[1] - 2, padded.shape[2] - 2
    s2 = s * s
    zero, one = np.float32(0.0), np.float32(1.0)
    for y in prange(h):
        rows = np.empty((4, w), np.float32)  # this row's weights of one sub-pixel
        a, b, e, f = rows[0], rows[1], rows[2], rows[3]
        for k in range(s2):
            _weigh(tail, weight, gain, constants, keepalive, hold, s2, k, y, a, b, e, f, gathered[k, y])
            b0, b1, b2, b3, b4, b5, b6, b7, b8 = kernels[0, k]
            p0, p1, p2, p3, p4, p5, p6, p7, p8 = kernels[1, k]
            for c in range(3):
                r0, r1, r2 = padded[c, y], padded[c, y + 1], padded[c, y + 2]
                history, fix, out = colour[c * s2 + k, y], tail[(3 + c) * s2 + k, y], result[c * s2 + k, y]
                for x in range(w):
                    v0, v1, v2, v3, v4 = r0[x], r0[x + 1], r0[x + 2], r1[x], r1[x + 1]
                    v5, v6, v7, v8 = r1[x + 2], r2[x], r2[x + 1], r2[x + 2]
                    base = b0 * v0 + b1 * v1 + b2 * v2 + b3 * v3 + b4 * v4 + b5 * v5 + b6 * v6 + b7 * v7 + b8 * v8
                    splat = p0 * v0 + p1 * v1 + p2 * v2 + p3 * v3 + p4 * v4 + p5 * v5 + p6 * v6 + p7 * v7 + p8 * v8
                    v = a[x] * history[x] + b[x] * splat + e[x] * base + f[x] * fix[x]
                    out[x] = min(max(v, zero), one)


@njit(parallel=True, fastmath=True, cache=True)
def _depth_gap(depth, previous):
    """``previous`` (s² x H x W, the reprojected history's depth, folded) becomes its gap to ``depth`` (H x W)."""
    h, w = depth.shape
    for y in prange(h):
        d = depth[y]
        for k in range(previous.shape[0]):
            p = previous[k, y]
            for x in range(w):
                p[x] = abs(d[x] - p[x]) / (max(d[x], p[x]) + np.float32(GAP_FLOOR))


@njit(parallel=True, fastmath=True, cache=True)
def _unfold_state(result, gathered, depth, with_depth, s, state, depth_state):
    """``state`` (sH x sW x 4): colour from ``result`` and the weight from ``gathered`` (s² x H x W), interleaved
    (the engine reprojects the four channels in one pass); if ``with_depth``, ``depth_state`` (sH x sW) is
    ``depth`` (H x W) repeated over each block."""
    h, w = gathered.shape[1:]
    s2 = s * s
    for row in prange(h * s):
        y, i = row // s, row % s
        flat = state[row].reshape(-1)
        for j in range(s):
            q = i * s + j
            r, g, b, n = result[q, y], result[s2 + q, y], result[2 * s2 + q, y], gathered[q, y]
            for x in range(w):
                o = (x * s + j) * 4
                flat[o], flat[o + 1], flat[o + 2], flat[o + 3] = r[x], g[x], b[x], n[x]
        if with_depth:
            d, dst = depth[y], depth_state[row]
            for x in range(w):
                for j in range(s):
                    dst[x * s + j] = d[x]


@njit(fastmath=True, cache=True, inline="always")
def row_pick(motion, y):
    """Which filter row ``y``'s pixels pick: 0 if none is still (motion exactly zero), 1 if all are, else 2."""
    still = 0
    for x in range(motion.shape[2]):
        if motion[0, y, x] == 0.0 and motion[1, y, x] == 0.0:
            still += 1
    return 0 if still == 0 else 1 if still == motion.shape[2] else 2


@njit(fastmath=True, cache=True, inline="always")
def _detail_at(details, detailed, k, q, y, x):
    """Filter ``k``'s luma detail at sub-pixel ``q`` of pixel ``(y, x)``: 0 where it has none (bit ``k`` of
    ``detailed``)."""
    return details[k, q, y, x] if detailed >> k & 1 else np.float32(0.0)


@njit(parallel=True, fastmath=True, cache=True)
def _show(moving, still, details, detailed, motion, pick, s, out):
    """``out`` (3 x sH x sW), clamped: ``moving`` (3s² x H x W) where ``pick`` is 0, ``still`` where it is 1,
    and where it is 2, per pixel by its motion (exactly zero: ``still``); each plus its filter's luma detail
    (``details``, 2 x s² x H x W: ``moving``'s, then ``still``'s, where bit 0 or 1 of ``detailed`` is set)."""
    h, w = motion.shape[1:]
    s2 = s * s
    zero, one = np.float32(0.0), np.float32(1.0)
    for row in prange(h * s):
        y, i = row // s, row % s
        for x in range(w):
            rest = pick == 1 or (pick == 2 and motion[0, y, x] == 0.0 and motion[1, y, x] == 0.0)
            src, k = (still, 1) if rest else (moving, 0)
            for j in range(s):
                extra = _detail_at(details, detailed, k, i * s + j, y, x)
                for c in range(3):
                    out[c, row, x * s + j] = min(max(src[c * s2 + i * s + j, y, x] + extra, zero), one)


@njit(parallel=True, fastmath=True, cache=True)
def _show8(moving, still, details, detailed, motion, pick, s, out):
    """``_show`` into ``out`` (sH x sW x 3 uint8), times 255 rounded to nearest (ties to even, as OpenCV). A row
    that shows one filter everywhere runs plane by plane, which LLVM vectorises (half the time)."""
    h, w = motion.shape[1:]
    s2 = s * s
    zero, one, full = np.float32(0.0), np.float32(1.0), np.float32(255.0)
    for row in prange(h * s):
        y, i = row // s, row % s
        flat = out[row].reshape(-1)
        k = pick if pick != 2 else row_pick(motion, y)  # a row whose pixels all show one filter: plane by plane
        if k != 2:
            src = still if k == 1 else moving
            for c in range(3):
                for j in range(s):
                    plane = src[c * s2 + i * s + j, y]
                    if detailed >> k & 1:
                        extra = details[k, i * s + j, y]
                        for x in range(w):
                            flat[(x * s + j) * 3 + c] = np.uint8(
                                np.rint(min(max(plane[x] + extra[x], zero), one) * full)
                            )
                    else:
                        for x in range(w):
                            flat[(x * s + j) * 3 + c] = np.uint8(np.rint(min(max(plane[x], zero), one) * full))
            continue
        for x in range(w):
            rest = motion[0, y, x] == 0.0 and motion[1, y, x] == 0.0
            src, k = (still, 1) if rest else (moving, 0)
            for j in range(s):
                extra = _detail_at(details, detailed, k, i * s + j, y, x)
                for c in range(3):
                    v = min(max(src[c * s2 + i * s + j, y, x] + extra, zero), one)
                    flat[(x * s + j) * 3 + c] = np.uint8(np.rint(v * full))


@njit(fastmath=True, cache=True, inline="always")
def _filtered(result, matrix, bias, c, y, q, s2, acc):
    """``acc`` (W): sub-pixel ``q`` of a 1x1 display filter (``matrix``: s² x s², ``bias``: s²) over colour ``c``'s
    folded planes of ``result`` at row ``y``."""
    b = bias[q]
    for x in range(acc.shape[0]):
        acc[x] = b
    for k in range(s2):
        m, src = matrix[q, k], result[c * s2 + k, y]
        for x in range(acc.shape[0]):
            acc[x] += m * src[x]


@njit(fastmath=True, cache=True, inline="always")
def _add_detail(details, detailed, k, y, q, acc):
    """``acc`` plus filter ``k``'s luma detail (``details[k]``, s² x H x W) at sub-pixel ``q``, row ``y``, if it
    has one (bit ``k`` of ``detailed``)."""
    if detailed >> k & 1:
        src = details[k, q, y]
        for x in range(acc.shape[0]):
            acc[x] += src[x]


@njit(fastmath=True, cache=True, inline="always")
def _shown_row(result, matrices, biases, details, detailed, motion, pick, c, y, q, s2, rows):
    """``rows[0]``: the shown values of sub-pixel ``q`` of colour ``c`` at row ``y``, clamped: filter 0
    (``matrices``/``biases``: 2 x ...; plus ``details[0]`` where bit 0 of ``detailed`` is set) where ``pick``
    is 0, filter 1 where it is 1, and where it is 2 per pixel by its motion (exactly zero: filter 1; the
    callers give a row whose pixels all pick one filter that filter's ``pick``, ``row_pick``)."""
    out, first = rows[0], 1 if pick == 1 else 0
    _filtered(result, matrices[first], biases[first], c, y, q, s2, out)
    _add_detail(details, detailed, first, y, q, out)
    if pick == 2:
        _filtered(result, matrices[1], biases[1], c, y, q, s2, rows[1])
        _add_detail(details, detailed, 1, y, q, rows[1])
        for x in range(out.shape[0]):
            if motion[0, y, x] == 0.0 and motion[1, y, x] == 0.0:
                out[x] = rows[1, x]
    for x in range(out.shape[0]):
        out[x] = min(max(out[x], np.float32(0.0)), np.float32(1.0))


@njit(parallel=True, fastmath=True, cache=True)
def _luma(result, s2, p, out):
    """``out`` (s² x H + 2p x W + 2p): the luma (``LUMA``) of the folded colour ``result`` (3s² x H x W), its
    edges replicated ``p`` wide."""
    h, w = result.shape[1:]
    kr, kg, kb = np.float32(LUMA[0]), np.float32(LUMA[1]), np.float32(LUMA[2])
    for y in prange(h):
        for q in range(s2):
            r, g, b, dst = result[q, y], result[s2 + q, y], result[2 * s2 + q, y], out[q, y + p]
            for x in range(w):
                dst[x + p] = kr * r[x] + kg * g[x] + kb * b[x]
            for e in range(p):
                dst[e], dst[w + p + e] = dst[p], dst[w + p - 1]
    for q in range(s2):
        for e in range(p):
            out[q, e], out[q, h + p + e] = out[q, p], out[q, h + p - 1]


@njit(parallel=True, fastmath=True, cache=True)
def _show_filtered(result, matrices, biases, details, detailed, motion, pick, s, out):
    """``_show`` with 1x1 display filters applied here (``_shown_row``) from the new colour, folded (``result``)."""
    h, w = motion.shape[1:]
    s2 = s * s
    for row in prange(h * s):
        y, i = row // s, row % s
        rows = np.empty((2, w), np.float32)
        k = pick if pick != 2 else row_pick(motion, y)  # a row whose pixels all show one filter runs that one
        for c in range(3):
            for j in range(s):
                _shown_row(result, matrices, biases, details, detailed, motion, k, c, y, i * s + j, s2, rows)
                dst, src = out[c, row], rows[0]
                for x in range(w):
                    dst[x * s + j] = src[x]


@njit(parallel=True, fastmath=True, cache=True)
def _show_filtered8(result, matrices, biases, details, detailed, motion, pick, s, out):
    """``_show_filtered`` into ``out`` (sH x sW x 3 uint8), as ``_show8`` writes it."""
    h, w = motion.shape[1:]
    s2 = s * s
    full = np.float32(255.0)
    for row in prange(h * s):
        y, i = row // s, row % s
        rows = np.empty((2, w), np.float32)
        k = pick if pick != 2 else row_pick(motion, y)  # a row whose pixels all show one filter runs that one
        flat = out[row].reshape(-1)
        for c in range(3):
            for j in range(s):
                _shown_row(result, matrices, biases, details, detailed, motion, k, c, y, i * s + j, s2, rows)
                src = rows[0]
                for x in range(w):
                    flat[(x * s + j) * 3 + c] = np.uint8(np.rint(src[x] * full))


def constants(params) -> np.ndarray:
    """``_weigh``'s constants from an accumulating model's parameters (``ModelDescriptor.params``):
    ``cap``, ``keep_offset``, ``settle_base`` (0 or 1), ``base_decay``, the correction's scale (2: this
    frame's share, ``fresh_correction``; 1: ``1 / (1 + n)``, ``settle``; 0: none), ``hold`` (0 without) and
    ``hold_correction`` (1 without; without a hold the hold plane is all zeros and it changes nothing)."""
    mode = 2 if params["fresh_correction"] else 1 if params["settle"] else 0
    values = [params["cap"], params["keep_offset"], float(params["settle_base"]), params["base_decay"], mode,
              params.get("hold", 0.0), params.get("hold_correction", 1.0)]  # fmt: skip
    return np.array(values, np.float32)


def combine(frame, folded, outputs, weighing, reset: bool, scale: int, depth, state, result, gathered, threads,
            hold=None):  # fmt: skip
    """The new state from one step: ``frame`` (3 x H x W), the reprojected state ``folded`` (colour 3s², weight
    s², ... x H x W), the folded graph's outputs without their batch axis (``upscaler.archs.NETWORK_OUTPUTS``:
    the tail's logits and correction, 6s² x H x W; the splat's gain, s²; the frame's bilinear and splat
    ``kernels``, 2 x s² x 9), ``constants(params)``, whether the stream starts here, ``depth`` (H x W, or
    None: the state's depth plane is left as it is, since a step reads it back only after a frame with depth).
    Writes ``result`` (3s² x H x W, the new colour folded), ``gathered`` (s² x H x W, scratch) and ``state``:
    ``(colour and weight, depth)``, sH x sW x 4 interleaved and sH x sW (None for a model without depth).
    ``hold`` (H x W float32, 0 or 1; None: none): the pixels whose keep logit gets the model's ``hold``."""
    tail, gain, kernels = outputs
    s2 = scale * scale
    padded = np.pad(frame, ((0, 0), (1, 1), (1, 1)), mode="edge")
    colour, weight = folded[: 3 * s2], folded[3 * s2 : 4 * s2]
    keepalive = np.float32(0.0 if reset else 1.0)
    interleaved, depth_state = state
    with_depth = depth is not None and depth_state is not None
    if not with_depth:  # typed placeholders: the kernel does not touch them
        depth, depth_state = np.zeros((1, 1), np.float32), np.zeros((1, 1), np.float32)
    if hold is None:
        hold = np.zeros(frame.shape[1:], np.float32)
    launch(threads, _mean, padded, colour, weight, tail, gain, weighing, keepalive, hold, kernels, scale, result,
           gathered)  # fmt: skip
    launch(threads, _unfold_state, result, gathered, depth, with_depth, scale, interleaved, depth_state)


def depth_gap(depth, previous, threads: int) -> None:
    """``AccumSR.depth_gap`` in place: ``previous`` (s² x H x W, the reprojected history's depth, folded) becomes
    how far this frame's ``depth`` (H x W; zeros where the caller gave none) is from it, relative to the farther
    of the two (the network's ``apart`` input)."""
    launch(threads, _depth_gap, depth, previous)


#: the kernels' luma details where there are none (``detailed`` 0: none of it is read)
_NO_DETAIL = np.zeros((2, 1, 1, 1), np.float32)


def show(moving, still, motion, pick: int, scale: int, out, threads: int, details=None, detailed: int = 0) -> None:
    """``out``: the shown frame from the display filters' outputs (``3s² x H x W`` each, folded); ``pick`` 0:
    ``moving`` everywhere, 1: ``still`` everywhere, 2: per pixel, ``still`` where ``motion`` (2 x H x W) is
    exactly zero. ``out`` is ``3 x sH x sW`` float32, or ``sH x sW x 3`` uint8 (times 255, rounded: the
    8-bit frame in the same pass). ``details`` and ``detailed``: luma details added, as ``show_filtered``'s."""
    kernel = _show8 if out.dtype == np.uint8 else _show
    launch(threads, kernel, moving, still, _NO_DETAIL if details is None else details, detailed, motion, pick, scale,
           out)  # fmt: skip


def show_filtered(result, matrices, biases, motion, pick: int, scale: int, out, threads: int, details=None,
                  detailed: int = 0) -> None:  # fmt: skip
    """``show`` for 1x1 display filters, applied in the same pass from ``result`` (3s² x H x W, the new colour
    folded): ``matrices`` (2 x s² x s²: sub-pixel out, sub-pixel in) and ``biases`` (2 x s²) are the filter shown
    where ``pick`` is 0 and the one where it is 1 (per pixel by ``motion`` where it is 2). A 1x1 filter's graph
    of its own cost more than this whole pass: it wrote the filtered colour out and the show read it back.
    ``details`` (2 x s² x H x W): the two filters' luma details, added to every colour; filter ``k``'s where bit
    ``k`` of ``detailed`` is set (the other is not read)."""
    kernel = _show_filtered8 if out.dtype == np.uint8 else _show_filtered
    launch(threads, kernel, result, matrices, biases, _NO_DETAIL if details is None else details, detailed, motion,
           pick, scale, out)  # fmt: skip


def luma(result, out, threads: int) -> None:
    """``out`` (s² x H + 2p x W + 2p): the luma of the new colour ``result`` (3s² x H x W, folded), its edges
    replicated ``p`` wide: what the luma detail filters' graphs read (their convolutions pad nothing: a padding
    operator was another pass over the planes)."""
    launch(threads, _luma, result, out.shape[0], (out.shape[1] - result.shape[1]) // 2, out)


def warm() -> None:
    """Compile the kernels now (or load them from Numba's cache): the first frame then does not wait for it.
    Engines call it as they load; an image build can call it to ship the compiled kernels."""
    s, h, w = 2, 2, 3  # one signature serves every scale and size
    frame, kernels, s2 = np.zeros((3, h, w), np.float32), np.zeros((2, s * s, 9), np.float32), s * s
    outputs = [np.zeros((6 * s2, h, w), np.float32), np.zeros(s2, np.float32), kernels]
    result, state = np.zeros((3 * s2, h, w), np.float32), np.zeros((h * s, w * s, 4), np.float32)
    folded, gathered = np.zeros((5 * s2, h, w), np.float32), np.zeros((s2, h, w), np.float32)
    weighing = np.array([16.0, 3.0, 1.0, 6.0, 2.0, 0.0, 1.0], np.float32)
    shown = np.zeros((3, h * s, w * s), np.float32)
    combine(frame, folded, outputs, weighing, False, s, np.zeros((h, w), np.float32), (state, shown[0]), result,
            gathered, 1)  # fmt: skip
    depth_gap(np.zeros((h, w), np.float32), gathered, 1)
    show(result, result, np.zeros((2, h, w), np.float32), 2, s, shown, 1)
    show(result, result, np.zeros((2, h, w), np.float32), 2, s, np.zeros((h * s, w * s, 3), np.uint8), 1)
    matrices, biases = np.zeros((2, s2, s2), np.float32), np.zeros((2, s2), np.float32)
    show_filtered(result, matrices, biases, np.zeros((2, h, w), np.float32), 2, s, shown, 1)
    details = np.zeros((2, s2, h, w), np.float32)
    luma(result, np.zeros((s2, h + 2, w + 2), np.float32), 1)
    show_filtered(result, matrices, biases, np.zeros((2, h, w), np.float32), 2, s, shown, 1, details, 1)
    show_filtered(
        result, matrices, biases, np.zeros((2, h, w), np.float32), 2, s, np.zeros((h * s, w * s, 3), np.uint8), 1
    )
