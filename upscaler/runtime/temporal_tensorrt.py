"""TensorRT for temporal models: the whole step (reproject, network, blend) as one engine, history on the GPU.

The engine is built from the model's whole-step ONNX graph with one
optimisation profile over all five inputs (``profiles.temporal_shapes``):
batch 1, frames from 1x1 to the profile's largest. The history never leaves
the device: each step writes its output into a device buffer that becomes
the next step's ``history`` input, and the buffer read as history becomes
the next output (two buffers, swapped). Per step only the frame, jitter,
motion and reset flag are uploaded, and the output is downloaded once for
the caller. On a reset the graph ignores the history (it starts from the
frame upsampled), so an uninitialised buffer is passed there.

Never executed against the real library (no TensorRT or GPU on our
machines): ``tests/test_temporal_engines_gpu.py`` runs it against the fake
TensorRT module and fake CUDA device of ``tests/fakes`` (which compute with
ONNX Runtime's CPU engine), checking the calls, profile, buffers and values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from upscaler.models import ModelDescriptor
from upscaler.runtime import tensorrt as trt_runtime
from upscaler.runtime.base import EngineOptions, EngineUnavailable, choose_precision, require_file
from upscaler.runtime.profiles import TEMPORAL_PROFILE, ShapeProfile, temporal_shapes
from upscaler.runtime.stream import StreamState, depth_input

__all__ = ["TEMPORAL_INPUTS", "TensorRTTemporalEngine"]

#: The whole-step graph's inputs, in the order ``export_temporal`` writes them.
TEMPORAL_INPUTS = ("frame", "jitter", "motion", "history", "reset")


class TensorRTTemporalEngine(StreamState):
    """A TensorRT engine for one temporal model and profile; owns the history (on the device)."""

    name = "tensorrt"
    PER_STREAM = ("_history", "_spare")  #: the plan and execution context are shared by forks

    def __init__(
        self,
        model: ModelDescriptor,
        options: EngineOptions | None = None,
        *,
        profile: ShapeProfile = TEMPORAL_PROFILE,
        plan_file: Path | None = None,
    ) -> None:
        options = options or EngineOptions()
        trt = trt_runtime.import_tensorrt()
        if profile.max[0] != 1:
            raise ValueError(
                f"a temporal engine runs one stream per step: the profile's max batch must be 1, got {profile.max[0]}"
            )
        self._device = trt_runtime.cuda_device(options.device_id)
        self.precision = choose_precision(self.name, options.precision, ("fp16", "fp32"))
        graph = require_file(model, "onnx")
        self.device, self.scale = f"cuda:{options.device_id}", model.scale
        self._channels, self._depth = model.state_channels, model.depth
        self.key = trt_runtime.engine_key(trt, self._device, graph, self.precision, profile)
        self.key["inputs"] = "temporal"  # a temporal plan is never mistaken for a single-frame one
        self._runtime, self._engine, self._context, self.plan_path = trt_runtime.open_engine(
            trt, self._device, model, graph, self.key, options, plan_file=plan_file, profile=profile,
            shapes=temporal_shapes(profile, model.scale, model.state_channels, model.depth),
        )  # fmt: skip
        names, inputs, outputs = trt_runtime.io_tensors(trt, self._engine)
        wanted_inputs = {*TEMPORAL_INPUTS, "depth"} if self._depth else set(TEMPORAL_INPUTS)
        if set(inputs) != wanted_inputs or outputs != ["output"]:
            wanted = ", ".join(sorted(wanted_inputs))
            raise EngineUnavailable(f"expected a temporal step engine ({wanted} -> output), got {names}")
        frame = self._engine.get_tensor_profile_shape("frame", 0)  # min, opt, max as N x C x H x W
        self.profile = ShapeProfile(*((int(s[0]), int(s[2]), int(s[3])) for s in frame))
        self._history = None  # device buffer: the previous output
        self._spare = None  # device buffer of the same size, written by the next step

    def step(
        self, frame: np.ndarray, jitter: np.ndarray, motion: np.ndarray, reset: bool, depth: np.ndarray | None = None
    ) -> np.ndarray:
        """The output (``1 x 3 x sH x sW``, on the host); the state stays on the device as the next history."""
        n, _, h, w = frame.shape
        if not self.profile.fits(frame.shape):
            raise ValueError(
                f"a {w}x{h} frame is outside this TensorRT engine's profile "
                f"({self.profile.min[2]}x{self.profile.min[1]} to {self.profile.max[2]}x{self.profile.max[1]})"
            )
        s, device, context = self.scale, self._device, self._context
        expected = (n, self._channels, h * s, w * s)
        fresh = reset or self._history is None or tuple(self._history.shape) != expected
        if fresh:
            self._spare = None
        with device.current():
            if fresh:  # not read by the graph on a reset: any buffer of the size will do
                self._history = device.empty(expected)
            out = self._spare if self._spare is not None else device.empty(expected)
            buffers = {
                "frame": device.upload(np.ascontiguousarray(frame, np.float32)),
                "jitter": device.upload(np.ascontiguousarray(jitter, np.float32)),
                "motion": device.upload(np.ascontiguousarray(motion, np.float32)),
                "reset": device.upload(np.array([[1.0 if fresh else 0.0]], np.float32)),
                "history": self._history,
            }
            if self._depth:
                buffers["depth"] = device.upload(depth_input(depth, frame))
            for name, buffer in buffers.items():
                if not context.set_input_shape(name, tuple(buffer.shape)):
                    raise RuntimeError(f"TensorRT refused the {name} shape {tuple(buffer.shape)}")
            shape = tuple(int(d) for d in context.get_tensor_shape("output"))
            if shape != expected:
                raise RuntimeError(f"TensorRT reports an output of {shape} for a {w}x{h} frame, expected {expected}")
            for name, buffer in [*buffers.items(), ("output", out)]:
                if not context.set_tensor_address(name, device.address(buffer)):
                    raise RuntimeError(f"TensorRT refused the address of {name}")
            if not context.execute_async_v3(device.stream):
                raise RuntimeError("TensorRT execution failed")
            result = device.download(out[:, :3])  # the frame only: the rest of the state stays on the device
        self._history, self._spare = out, self._history
        return result
