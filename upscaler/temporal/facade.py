"""``TemporalUpscaler``: one per stream; it owns the history (the FSR 2 / DLSS context shape).

    ts = TemporalUpscaler("x4-temporal", backend="auto")
    hr = ts.upscale(frame, jitter=(jx, jy), motion=mv, depth=None, reset=False)

Conventions (DESIGN.md section 9): ``frame`` is ``H x W x 3`` uint8 RGB;
``jitter`` is where this frame sampled, in low-resolution pixels, each in
[-0.5, 0.5): pixel (x, y) sampled the scene at ``(x + 0.5 + jx, y + 0.5 + jy)``
from the top-left corner; ``motion`` is ``H x W x 2`` float32 in low-resolution
pixels, for each pixel the offset to where the same surface was in the
previous frame (previous = current + motion), jitter excluded; ``None`` asks
the upscaler to estimate it (``flow.estimate_motion``). ``reset=True`` drops
the history (a cut the game knows about); a cut it does not signal is for
the network to notice (it was trained on unsignalled cuts). A size change
resets. ``depth`` (``H x W`` float32, linear depth in any unit, larger is
farther, 0 where unknown) is what the renderer's depth buffer holds at each
sample: models that take depth (``ModelDescriptor.depth``) drop history
where this frame's surface is not the one the history saw (a
disocclusion); models that do not ignore it. Give it on every frame or
never: a frame with depth after one without drops the whole history.

Bad input raises ``ValueError`` (or ``TypeError``) naming what is wrong, and
leaves the stream as it was: the next good frame continues from the same
history. That includes motion beyond ``MOTION_BOUND`` times the frame's
longer side and frames whose output would be over ``MAX_OUTPUT_SIDE`` px on
a side (``check_temporal_size``: the video CLI and the service apply the
same limit).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from upscaler.models import ModelDescriptor, ModelError, get_model
from upscaler.runtime.base import EngineOptions
from upscaler.runtime.select import create_engine
from upscaler.runtime.stream import REMAP_SIDE, TemporalEngine, rgb8_inputs, rgb8_output
from upscaler.temporal.flow import DEFAULT_FLOW, MotionEstimator

__all__ = ["MAX_OUTPUT_SIDE", "MOTION_BOUND", "TemporalUpscaler", "check_temporal_inputs", "check_temporal_size"]

log = logging.getLogger(__name__)


#: The longest output side a temporal step takes (OpenCV reprojects the history with 16-bit indices).
MAX_OUTPUT_SIDE = REMAP_SIDE
#: Motion vectors beyond this many times the frame's longer side are refused: no surface moves that far
#: between two frames, and values like 1e30 overflow to infinity inside the engine.
MOTION_BOUND = 4


def check_temporal_size(width: int, height: int, scale: int) -> None:
    """``ValueError`` unless a ``width x height`` frame's output (``scale`` times each side) is within
    ``MAX_OUTPUT_SIDE`` on each side: the one limit the library, the stream and the video CLI apply."""
    if max(width, height) * scale > MAX_OUTPUT_SIDE:
        raise ValueError(
            f"a {width}x{height} frame at x{scale} makes a {width * scale}x{height * scale} output; temporal "
            f"models take outputs of at most {MAX_OUTPUT_SIDE} px on each side "
            f"(inputs of at most {MAX_OUTPUT_SIDE // scale} px)"
        )


def _check_motion(motion, h: int, w: int) -> None:
    if not isinstance(motion, np.ndarray) or motion.dtype != np.float32:
        kind = motion.dtype if isinstance(motion, np.ndarray) else type(motion).__name__
        raise ValueError(f"motion must be a float32 array (H x W x 2, low-resolution pixels), got {kind}")
    if motion.shape != (h, w, 2):
        raise ValueError(f"motion must be {h} x {w} x 2 for this {h} x {w} frame, got {motion.shape}")
    if not np.isfinite(motion).all():
        raise ValueError("motion holds NaN or infinite values")
    bound = MOTION_BOUND * max(h, w)
    if motion.size and float(np.abs(motion).max()) > bound:
        raise ValueError(
            f"motion reaches {float(np.abs(motion).max()):g} low-resolution pixels; at most {bound} "
            f"({MOTION_BOUND} times the frame's longer side) is taken"
        )


def check_temporal_inputs(
    frame: np.ndarray, jitter, motion: np.ndarray | None, depth: np.ndarray | None, scale: int | None = None
) -> tuple[float, float]:
    """Validate one frame's inputs against the conventions (and, given the model's ``scale``, its size against
    ``check_temporal_size``); returns the jitter as floats."""
    if not isinstance(frame, np.ndarray):
        raise TypeError(f"frame must be a numpy array (H x W x 3 uint8 RGB), got {type(frame).__name__}")
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame must be H x W x 3 uint8 RGB, got shape {frame.shape} {frame.dtype}")
    h, w = frame.shape[:2]
    if h < 1 or w < 1:
        raise ValueError(f"frame is empty: {frame.shape}")
    if scale is not None:
        check_temporal_size(w, h, scale)
    try:
        jx, jy = (float(v) for v in jitter)
    except (TypeError, ValueError):
        raise ValueError(f"jitter must be two numbers (jx, jy), got {jitter!r}") from None
    for name, v in (("jx", jx), ("jy", jy)):
        if not math.isfinite(v) or not -0.5 <= v < 0.5:
            raise ValueError(f"jitter {name} must be in [-0.5, 0.5) low-resolution pixels, got {v}")
    if motion is not None:
        _check_motion(motion, h, w)
    if depth is not None:
        if not isinstance(depth, np.ndarray) or depth.dtype.kind != "f":
            raise ValueError("depth must be a float array (H x W)")
        if depth.shape not in ((h, w), (h, w, 1)):
            raise ValueError(f"depth must be {h} x {w} for this frame, got {depth.shape}")
        if not np.isfinite(depth).all() or (depth < 0).any():
            raise ValueError("depth must be finite and not negative (linear depth; 0 where unknown)")
    return jx, jy


class TemporalUpscaler:
    """Temporal super-sampling of one stream of jittered frames.

    ``model``: a temporal built-in model (``x4-temporal``, ``x2-temporal``) or
    a ``.safetensors`` path from ``upscaler train``; ``backend``: ``auto``,
    ``cpu``, ``gpu``, ``onnxruntime``, ``torch`` or an engine name;
    ``threads``: CPU threads for inference; ``spin=False`` lets ONNX
    Runtime's idle threads sleep between frames (other work shares the
    cores); ``engine``: an engine to use instead (e.g. ``engine.fork()`` of
    another stream's, to share one loaded network); ``flow``: the optical
    flow preset for frames sent without motion vectors (``medium``, ``fast``,
    ``ultrafast``: ``upscaler.temporal.flow`` has what each costs and gains).
    """

    def __init__(
        self,
        model: str | Path | ModelDescriptor = "x4-temporal",
        backend: str = "auto",
        *,
        threads: int | None = None,
        spin: bool = True,
        engine: TemporalEngine | None = None,
        flow: str = DEFAULT_FLOW,
    ) -> None:
        self._flow = MotionEstimator(flow)  # first: a bad preset is refused before an engine is built
        self.model = get_model(model)
        if not self.model.temporal:
            raise ModelError(
                f"{self.model.name} is a single-frame model; TemporalUpscaler takes a temporal one "
                "(x4-temporal, x2-temporal); use Upscaler for single frames"
            )
        self.engine = engine or create_engine(self.model, backend, options=EngineOptions(threads=threads, spin=spin))
        self._size: tuple[int, int] | None = None
        self.frames = 0  #: frames upscaled since the last reset

    @property
    def scale(self) -> int:
        """Output size / input size."""
        return self.model.scale

    def reset(self) -> None:
        """Drop the history: the next frame starts a new shot."""
        self.engine.drop_history()
        self._flow.reset()
        self._size = None
        self.frames = 0

    def upscale(
        self,
        frame: np.ndarray,
        jitter=(0.0, 0.0),
        motion: np.ndarray | None = None,
        depth: np.ndarray | None = None,
        reset: bool = False,
    ) -> np.ndarray:
        """The ``sH x sW x 3`` uint8 frame reconstructed from this frame's samples and the history."""
        jx, jy = check_temporal_inputs(frame, jitter, motion, depth, self.scale)
        size = frame.shape[:2]
        if self._size is not None and size != self._size:
            log.info("frame size changed from %s to %s: history reset", self._size, size)
            reset = True
        if reset:
            self.reset()
        if motion is None:
            motion = self._flow.estimate(frame, (jx, jy))
        else:
            self._flow.remember(frame, (jx, jy))
        fresh = self._size is None
        step_rgb8 = getattr(self.engine, "step_rgb8", None)
        if step_rgb8 is not None:  # the engine converts where it runs (8-bit frames cross the bus)
            image = step_rgb8(frame, (jx, jy), motion, reset=fresh, depth=depth)
        else:
            batch, jit, mv = rgb8_inputs(frame, (jx, jy), motion)
            image = rgb8_output(self.engine.step(batch, jit, mv, reset=fresh, depth=depth)[0])  # a copy
        self._size = size
        self.frames += 1
        return image
