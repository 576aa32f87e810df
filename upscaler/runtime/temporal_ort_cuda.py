"""ONNX Runtime's CUDA provider for temporal models: the whole-step graph with IO binding."""

from __future__ import annotations

import numpy as np

from upscaler.models import ModelDescriptor
from upscaler.runtime.base import EngineOptions, EngineUnavailable, require_file
from upscaler.runtime.ort_cpu import import_onnxruntime
from upscaler.runtime.stream import StreamState, depth_input, start_state

__all__ = ["OrtCudaTemporalEngine"]


class OrtCudaTemporalEngine(StreamState):
    """ONNX Runtime's CUDA provider on the whole-step graph; the history stays on the GPU.

    Not executed on any machine of ours (no GPU was lent).
    """

    name = "onnxruntime-cuda"
    precision = "fp32"

    def __init__(self, model: ModelDescriptor, options: EngineOptions | None = None) -> None:
        from upscaler.runtime.ort_gpu import require_provider

        options = options or EngineOptions()
        if options.precision not in (None, "fp32"):
            raise EngineUnavailable(f"{self.name} runs temporal models in fp32 only")
        ort = import_onnxruntime()
        require_provider(ort, "CUDAExecutionProvider")
        path = require_file(model, "onnx")
        providers = [("CUDAExecutionProvider", {"device_id": str(options.device_id)})]
        self._ort, self._device_id = ort, options.device_id
        self._session = ort.InferenceSession(str(path), providers=providers)
        self.device, self.scale = f"cuda:{options.device_id}", model.scale
        self._channels, self._depth = model.state_channels, model.depth
        self._history = None

    def step(
        self, frame: np.ndarray, jitter: np.ndarray, motion: np.ndarray, reset: bool, depth: np.ndarray | None = None
    ) -> np.ndarray:
        s = self.scale
        h, w = frame.shape[2:]
        fresh = reset or self._history is None or tuple(self._history.shape()[2:]) != (h * s, w * s)
        binding = self._session.io_binding()
        binding.bind_cpu_input("frame", frame)
        binding.bind_cpu_input("jitter", jitter)
        binding.bind_cpu_input("motion", np.zeros_like(motion) if fresh else motion)
        binding.bind_cpu_input("reset", np.array([[1.0 if fresh else 0.0]], np.float32))
        if self._depth:
            binding.bind_cpu_input("depth", depth_input(depth, frame))
        if fresh:
            binding.bind_cpu_input("history", start_state(frame, s, self._channels)[None])
        else:
            binding.bind_ortvalue_input("history", self._history)
        binding.bind_output("output", "cuda", self._device_id)
        self._session.run_with_iobinding(binding)
        self._history = binding.get_outputs()[0]
        return self._history.numpy()[:, :3]
