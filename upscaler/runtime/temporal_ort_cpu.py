"""ONNX Runtime on the CPU for temporal models: OpenCV reprojection + the model's folded graph (``stream``)."""

from __future__ import annotations

import numpy as np

from upscaler.models import ModelDescriptor, ModelError
from upscaler.runtime.base import EngineOptions, EngineUnavailable
from upscaler.runtime.ort_cpu import cpu_session, import_onnxruntime
from upscaler.runtime.stream import Scratch, StreamState, depth_input, fold_reproject, start_state, unfold

__all__ = ["OrtCpuTemporalEngine"]


class OrtCpuTemporalEngine(StreamState):
    """ONNX Runtime on the CPU: OpenCV reprojection + the folded graph."""

    PER_STREAM = ("_history", "_depth_kept")
    name = "onnxruntime-cpu"
    device = "cpu"
    precision = "fp32"

    def __init__(self, model: ModelDescriptor, options: EngineOptions | None = None) -> None:
        options = options or EngineOptions()
        if options.precision not in (None, "fp32"):
            raise EngineUnavailable(f"{self.name} runs temporal models in fp32 only")
        entry = model.graph("folded")
        if entry is None:
            raise EngineUnavailable(f"model {model.name!r} has no folded graph (upscaler export temporal)")
        try:
            path = entry.verified()
        except ModelError as exc:
            raise EngineUnavailable(str(exc)) from None
        self._session = cpu_session(path, options)
        self.scale, self._channels, self._mode = model.scale, model.state_channels, model.reproject
        self._depth, self._shown = model.depth, model.display_planes
        self._wants_motion = "motion" in {i.name for i in self._session.get_inputs()}  # a display model's gate
        self._history: np.ndarray | None = None  # per stream: 4 bytes per state plane per output pixel
        self._depth_kept: bool | None = None  # per stream: the state's depth plane holds a depth (not zeros)
        self._scratch = Scratch()  # shared by every fork: 20 bytes per output pixel of the largest frame
        self._shrink = import_onnxruntime().RunOptions()
        self._shrink.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    def step(
        self, frame: np.ndarray, jitter: np.ndarray, motion: np.ndarray, reset: bool, depth: np.ndarray | None = None
    ) -> np.ndarray:
        """The output (``1 x 3 x sH x sW``); a view of the engine's state buffer, valid until the next step."""
        s, c, d = self.scale, self._channels, self._shown
        h, w = frame.shape[2:]
        fresh = reset or self._history is None or self._history.shape[1:] != (h * s, w * s)
        if fresh:  # the planes the step reads (the shown colour's are never read back)
            read, motion = start_state(frame, s, c - d), np.zeros_like(motion)
        else:
            read = self._history[d:]
        folded = self._scratch.take("folded", ((c - d) * s * s, h, w))
        moved = c - d - 1 if self._depth and not (self._depth_kept and not fresh) else c - d  # zeros: not moved
        fold_reproject(read[:moved], motion[0], s, folded[: moved * s * s], self._scratch, self._mode)
        folded[moved * s * s :] = 0.0
        out = self._run(frame, jitter, folded[None], fresh, depth=depth, motion=motion)
        self._depth_kept = depth is not None
        if self._history is None or self._history.shape[1:] != (h * s, w * s):
            self._history = np.empty((c, h * s, w * s), np.float32)
        unfold(out[0], s, self._history)  # the old history was read above: its buffer is free
        return self._history[None, :3]

    def _run(self, frame, jitter, folded, fresh: bool, options=None, depth=None, motion=None):
        feeds = {"frame": frame, "jitter": jitter, "history": folded, "reset": np.array([[float(fresh)]], np.float32)}
        if self._depth:
            feeds["depth"] = depth_input(depth, frame)
        if self._wants_motion:
            h, w = frame.shape[2:]
            feeds["motion"] = np.zeros((1, 2, h, w), np.float32) if motion is None else motion
        return self._session.run(None, feeds, options)[0]

    def release(self) -> None:
        """Drop the shared scratch and give ONNX Runtime's arena back (it keeps the peak step's activations,
        about 50 bytes per output pixel, until told): a 16x16 step that shrinks it as it ends."""
        super().release()
        s, n = self.scale, 16
        tiny = np.zeros((1, 3, n, n), np.float32)
        folded = np.zeros((1, (self._channels - self._shown) * s * s, n, n), np.float32)
        self._run(tiny, np.zeros((1, 2), np.float32), folded, True, self._shrink)
