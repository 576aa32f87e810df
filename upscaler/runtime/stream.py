"""What every temporal engine shares: the protocol, per-stream state, and the state's CPU-side layout.

A temporal engine takes the frame (``1 x 3 x H x W`` float32 in [0, 1]), its
jitter (``1 x 2``), motion (``1 x 2 x H x W``), a reset flag and, for models
that take it, depth (``1 x 1 x H x W``), and returns the high-resolution
frame (``1 x 3 x sH x sW``); it keeps the model's state (the output, and for
accumulating models the weight and depth planes after it) as the next
history. On a reset (or the first frame) the state is the frame upsampled
(bilinear) with nothing accumulated, as in training.

The engines, one per module beside the single-frame ones (``select.ENGINES``
holds both kinds):

- ``onnxruntime-cpu`` (``temporal_ort_cpu``): reprojects the state with
  OpenCV (``cv2.remap``, straight into the folded layout: one low-resolution
  map per sub-pixel; an accumulating model's colour and weight a block of
  sub-pixels at a time, ``fold_cpu``), runs the model's *folded* graph (the step between
  reprojection and PixelShuffle) and unfolds its output with ``cv2.merge``.
  ONNX Runtime's CPU ``GridSample`` costs more than the whole network at
  720p output (measured: 51 ms against cv2's few) and its ``DepthToSpace``
  7-11 ms against ``cv2.merge``'s 0.65 ms, so on the CPU both stay outside
  the graph.
- ``torch-cpu`` / ``torch-cuda`` (``temporal_torch``): the whole step; the
  state stays a tensor on the device.
- ``tensorrt`` (``temporal_tensorrt``): the whole-step graph as a TensorRT
  engine, the state in a device buffer between frames. Not executed here.
- ``onnxruntime-cuda`` (``temporal_ort_cuda``): the whole-step graph with IO
  binding; the state stays an ``OrtValue`` on the GPU between frames. Not
  executed here (no GPU).
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
from typing import Protocol

import cv2
import numpy as np

__all__ = [
    "REMAP_SIDE",
    "Scratch",
    "StreamState",
    "TemporalEngine",
    "depth_input",
    "fold_reproject",
    "rgb8_inputs",
    "rgb8_output",
    "start_state",
    "trim_heap",
    "unfold",
]


class TemporalEngine(Protocol):
    """One temporal step per call; owns the history."""

    name: str  #: engine kind
    device: str  #: where it runs
    precision: str  #: fp32
    scale: int  #: output size / input size

    def step(
        self, frame: np.ndarray, jitter: np.ndarray, motion: np.ndarray, reset: bool, depth: np.ndarray | None = None
    ) -> np.ndarray:
        """The high-resolution frame (it, and what else the model carries, becomes the history); ``depth``
        (``1 x 1 x H x W``) is read by models that take it, ignored by the others."""
        ...

    def drop_history(self) -> None:
        """Forget the history (the next step starts from the frame alone)."""
        ...

    def fork(self) -> TemporalEngine:
        """A new stream on the same loaded network (session, weights, threads): only the history is its own.

        Forks must not step at the same time (a server runs them on one thread)."""
        ...

    def release(self) -> None:
        """Give back the memory kept between steps beyond the histories (scratch, arenas): no stream steps now."""
        ...


#: OpenCV's ``remap`` indexes with 16-bit shorts: its source and destination sides, and its maps' rows and
#: columns, must each stay below 32767 (``CV_Assert(... < SHRT_MAX)``).
REMAP_SIDE = 32766


class Scratch:
    """Buffers one step writes and the next overwrites (the folded history, the reprojection maps), shared by
    every fork of an engine: forks never step at the same time, so one set serves them all, grown to the
    largest frame seen and dropped by ``release``. Only the history is a stream's own."""

    def __init__(self) -> None:
        self._flat: dict[str, np.ndarray] = {}

    def take(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A C-contiguous float32 buffer of ``shape`` (a view of the named buffer, grown if too small)."""
        size = int(np.prod(shape))
        flat = self._flat.get(name)
        if flat is None or flat.size < size:
            flat = self._flat[name] = np.empty(size, np.float32)
        return flat[:size].reshape(shape)

    def clear(self) -> None:
        """Drop every buffer (the next step allocates again)."""
        self._flat.clear()


class StreamState:
    """``drop_history`` and ``fork`` for engines whose per-stream state is the attributes in ``PER_STREAM``
    (everything else, the session or network, is shared by forks); the first is the history."""

    PER_STREAM: tuple[str, ...] = ("_history",)

    def drop_history(self) -> None:
        self._history = None

    def release(self) -> None:
        """Give back what the engine keeps between steps beyond the histories (no stream needs it now)."""
        scratch = getattr(self, "_scratch", None)
        if scratch is not None:
            scratch.clear()

    def fork(self):
        """A new stream on this engine's loaded network (see ``TemporalEngine.fork``)."""
        twin = copy.copy(self)
        for name in self.PER_STREAM:
            setattr(twin, name, None)
        return twin


def _maps(motion: np.ndarray, scale: int, scratch: Scratch) -> tuple[np.ndarray, np.ndarray]:
    """``(s²H x W)`` x and y maps: sub-pixel ``(i, j)`` of low-resolution pixel ``(x, y)`` reads the history at
    ``(s x + j, s y + i) + s * motion``, the ``s²`` sub-pixels' grids stacked (rows ``(i, j, y)``)."""
    s = scale
    h, w = motion.shape[1:]
    sub = np.arange(s, dtype=np.float32)
    rows_x = np.arange(w, dtype=np.float32) * s + sub[:, None]  # (j, x): s x + j, exact
    rows_y = np.arange(h, dtype=np.float32) * s + sub[:, None]  # (i, y): s y + i, exact
    map_x, map_y = scratch.take("map_x", (s, s, h, w)), scratch.take("map_y", (s, s, h, w))
    np.add(rows_x[None, :, None, :], (motion[0] * np.float32(s))[None, None], out=map_x)
    np.add(rows_y[:, None, :, None], (motion[1] * np.float32(s))[None, None], out=map_y)
    return map_x.reshape(s * s * h, w), map_y.reshape(s * s * h, w)


#: OpenCV's interpolation for each way a model resamples its state (``ModelDescriptor.reproject``).
_INTERPOLATION = {"linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC}


def fold_reproject(
    history: np.ndarray,
    motion: np.ndarray,
    scale: int,
    out: np.ndarray | None = None,
    scratch: Scratch | None = None,
    mode: str = "linear",
) -> np.ndarray:
    """``Cs² x H x W``: the history (``C x sH x sW`` planes) reprojected by ``motion`` (``2 x H x W``), folded.

    Sub-pixel ``(i, j)`` of low-resolution pixel ``p`` reads the history at
    ``s * p + (j, i) + s * motion(p)`` (``mode``: bilinear or bicubic, edges clamped): what
    the model's ``forward`` does with ``grid_sample`` before
    ``pixel_unshuffle``. ``cv2.remap`` writes the folded layout directly (the
    map stacks the ``s²`` sub-pixels' ``H x W`` grids), so no full-resolution
    warped frame or transpose is ever made; it runs in blocks of at most
    ``REMAP_SIDE`` map rows, so a tall frame (``s² H`` rows) is no limit: only
    the history's sides (the output's) must stay within ``REMAP_SIDE``.
    """
    h, w = motion.shape[1:]
    s = scale
    _check_sides(history.shape[1:], w)
    channels = history.shape[0]
    if out is None:
        out = np.empty((channels * s * s, h, w), np.float32)
    map_x, map_y = _maps(motion, s, scratch or Scratch())
    planes = out.reshape(channels, s * s * h, w)
    for c in range(channels):
        for r0, r1 in _blocks(s * s * h):
            cv2.remap(history[c], map_x[r0:r1], map_y[r0:r1], _INTERPOLATION[mode], dst=planes[c, r0:r1],
                      borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
    return out


def _check_sides(side: tuple[int, int], w: int) -> None:
    """Refuse a history of ``side`` (rows, columns), or maps ``w`` wide, over ``remap``'s side."""
    if max(side) > REMAP_SIDE or w > REMAP_SIDE:
        raise ValueError(f"a {side[1]}x{side[0]} history is over OpenCV's {REMAP_SIDE} px side")


def _blocks(rows: int, most: int = REMAP_SIDE) -> list[tuple[int, int]]:
    """``remap``'s row blocks of a map ``rows`` tall: at most ``most`` (and ``REMAP_SIDE``) each."""
    step = min(most, REMAP_SIDE)
    return [(r0, min(rows, r0 + step)) for r0 in range(0, rows, step)]


def rgb8_inputs(frame: np.ndarray, jitter, motion: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``step``'s inputs from an ``H x W x 3`` uint8 frame, ``(jx, jy)`` and ``H x W x 2`` motion: the frame
    times 1/255 in FP32, ``1 x 3 x H x W``; the jitter ``1 x 2``; the motion ``1 x 2 x H x W``."""
    batch = np.ascontiguousarray(frame.transpose(2, 0, 1)[None], dtype=np.float32) * np.float32(1 / 255)
    mv = np.ascontiguousarray(motion.transpose(2, 0, 1)[None], dtype=np.float32)
    return batch, np.array([jitter], np.float32).reshape(1, 2), mv


def rgb8_output(planes: np.ndarray) -> np.ndarray:
    """``sH x sW x 3`` uint8 from ``3 x sH x sW`` float planes in [0, 1] (temporal outputs are clamped), times
    255 rounded to nearest (ties to even), a new array.

    One interleave and one saturating, rounding conversion in OpenCV: 1.9 ms
    at 1280x720 against 5.6 ms for the general ``pipeline.planes_to_image``.
    """
    return cv2.convertScaleAbs(cv2.merge(list(planes)), alpha=255.0)


def trim_heap() -> None:
    """Give the C heap's free pages back to the system (glibc's ``malloc_trim``; nothing elsewhere): freed
    buffers of a few MB stay in the heap once glibc has raised its threshold for mapping them on their own."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def unfold(folded: np.ndarray, scale: int, out: np.ndarray | None = None) -> np.ndarray:
    """``C x sH x sW`` planes from a folded ``Cs² x H x W`` output (PixelShuffle), with OpenCV.

    Row ``i`` of every ``s x s`` block of colour ``c`` is the ``s`` planes
    ``(c, i, 0..s-1)`` interleaved: one ``cv2.merge`` each, written in place
    (a fraction of ONNX Runtime's ``DepthToSpace``: 0.65 ms against 7-11 ms
    at 1280x720 on a 2-core AVX2 EPYC).
    """
    s = scale
    depth, h, w = folded.shape
    channels = depth // (s * s)
    if out is None:
        out = np.empty((channels, h * s, w * s), np.float32)
    planes = folded.reshape(channels, s, s, h, w)
    rows = out.reshape(channels, h, s, w * s)
    for c in range(channels):
        for i in range(s):
            cv2.merge([planes[c, i, j] for j in range(s)], dst=rows[c, :, i].reshape(h, w, s))
    return out


def _upsample(frame: np.ndarray, scale: int) -> np.ndarray:
    """``3 x sH x sW`` bilinear upsample of a ``1 x 3 x H x W`` frame (half-pixel centres, as PyTorch's)."""
    h, w = frame.shape[2:]
    return np.stack([cv2.resize(p, (w * scale, h * scale), interpolation=cv2.INTER_LINEAR) for p in frame[0]])


def depth_input(depth: np.ndarray | None, frame) -> np.ndarray:
    """The ``depth`` input of a model that takes one: ``1 x 1 x H x W`` float32, zeros where the caller gave
    none (the graph then keeps its history wherever the network says)."""
    h, w = frame.shape[-2:]
    if depth is None:
        return np.zeros((1, 1, h, w), np.float32)
    return np.ascontiguousarray(np.asarray(depth, np.float32).reshape(1, 1, h, w))


def start_state(frame: np.ndarray, scale: int, channels: int = 3) -> np.ndarray:
    """``C x sH x sW``: the state a stream starts from, the frame upsampled (bilinear) and zero planes beyond
    the colour (nothing accumulated yet): what the models' ``start_state`` make, and what a reset selects."""
    up = _upsample(frame, scale)
    if channels == 3:
        return up
    return np.concatenate([up, np.zeros((channels - 3, *up.shape[1:]), np.float32)])
