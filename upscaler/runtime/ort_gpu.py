"""ONNX Runtime on NVIDIA GPUs: the CUDA and TensorRT execution providers (``onnxruntime-gpu``).

Both use IO binding: the input is bound from host memory once per call and
the output is allocated on the device and copied back once, so ONNX Runtime
makes no extra copies between them.

- ``onnxruntime-cuda``: the FP16 graph (``upscaler export onnx --fp16``) by
  default, the FP32 graph on request.
- ``onnxruntime-tensorrt``: TensorRT inside ONNX Runtime, from the FP32
  graph with FP16 enabled (or the symmetric INT8 QDQ graph), with its engine
  and timing caches in the TensorRT cache folder and one explicit shape
  profile, named after the graph's real input; inputs outside it are split
  and tiled (``profiles.run_within_profile``) as in the native engine, and
  nodes TensorRT cannot take fall back to CUDA on the same device.

Never executed against the real library: no machine of ours has
``onnxruntime-gpu`` with a GPU. ``tests/test_gpu_adapters.py`` runs it
against a fake ``onnxruntime`` whose sessions and IO bindings are real ONNX
Runtime CPU ones (so binding calls and values are checked) and whose
provider options are checked against the documented TensorRT provider
option names; CUDA and TensorRT themselves are not.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from upscaler.models import ModelDescriptor
from upscaler.runtime.base import (
    EngineOptions,
    EngineUnavailable,
    check_batch,
    choose_precision,
    require_graph,
    tensorrt_graph,
)
from upscaler.runtime.ort_cpu import import_onnxruntime
from upscaler.runtime.profiles import DEFAULT_PROFILE, ShapeProfile, default_cache_dir, run_within_profile

__all__ = ["OrtGpuEngine", "graph_input", "require_provider", "tensorrt_provider_options"]

log = logging.getLogger(__name__)


def require_provider(ort, provider: str) -> None:
    """``EngineUnavailable`` unless this ONNX Runtime build has ``provider``."""
    available = ort.get_available_providers()
    if provider not in available:
        raise EngineUnavailable(
            f"onnxruntime {ort.__version__} has no {provider} (install onnxruntime-gpu); it has {', '.join(available)}"
        )


def graph_input(ort: Any, graph: Path) -> str:
    """The name of ``graph``'s input (the TensorRT provider's profile options must name it)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"]).get_inputs()[0].name


def tensorrt_provider_options(
    precision: str,
    options: EngineOptions,
    *,
    input_name: str = "input",
    profile: ShapeProfile = DEFAULT_PROFILE,
    channels: int = 3,
) -> dict[str, str]:
    """TensorRT execution provider options: precision, caches and the shape profile of ``input_name``."""
    cache = str((options.cache_dir or default_cache_dir()) / "ort-trt")
    return {
        "device_id": str(options.device_id),
        "trt_fp16_enable": str(precision in ("fp16", "int8")),
        "trt_int8_enable": str(precision == "int8"),
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": cache,
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": cache,
        "trt_profile_min_shapes": f"{input_name}:{profile.shape_text('min', channels)}",
        "trt_profile_opt_shapes": f"{input_name}:{profile.shape_text('opt', channels)}",
        "trt_profile_max_shapes": f"{input_name}:{profile.shape_text('max', channels)}",
    }


class OrtGpuEngine:
    """ONNX Runtime with the ``cuda`` or ``tensorrt`` execution provider.

    ``profile`` is the TensorRT provider's shape profile (unused by ``cuda``).
    """

    def __init__(
        self,
        model: ModelDescriptor,
        options: EngineOptions | None = None,
        *,
        provider: str = "cuda",
        profile: ShapeProfile = DEFAULT_PROFILE,
    ) -> None:
        options = options or EngineOptions()
        ort = import_onnxruntime()
        self.name = f"onnxruntime-{provider}"
        self.profile: ShapeProfile | None = None
        if provider == "cuda":
            self.precision = choose_precision(self.name, options.precision, ("fp16", "fp32"))
            if options.precision is None and model.graph("fp16") is None:
                self.precision = "fp32"  # no FP16 graph shipped: FP32 still runs on the GPU
            graph = require_graph(model, self.precision)
            require_provider(ort, "CUDAExecutionProvider")
            providers = [("CUDAExecutionProvider", {"device_id": str(options.device_id)})]
        elif provider == "tensorrt":
            self.precision = choose_precision(self.name, options.precision, ("fp16", "fp32", "int8"))
            graph = tensorrt_graph(model, self.precision)
            require_provider(ort, "TensorrtExecutionProvider")
            trt_options = tensorrt_provider_options(
                self.precision, options, input_name=graph_input(ort, graph), profile=profile, channels=model.channels
            )
            Path(trt_options["trt_engine_cache_path"]).mkdir(parents=True, exist_ok=True)
            device = {"device_id": str(options.device_id)}  # the fallback runs on the same GPU
            providers = [("TensorrtExecutionProvider", trt_options), ("CUDAExecutionProvider", device)]
            self.profile = profile
        else:
            raise ValueError(f"provider must be cuda or tensorrt, got {provider!r}")
        session_options = ort.SessionOptions()
        session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session_options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(graph), session_options, providers=providers)
        except Exception as exc:  # a provider that fails to initialise (driver, libraries)
            raise EngineUnavailable(f"{self.name} failed to start: {exc}") from None
        if self._session.get_providers()[0] != providers[0][0]:
            raise EngineUnavailable(f"{self.name}: ONNX Runtime fell back to {self._session.get_providers()[0]}")
        self._input = self._session.get_inputs()[0].name
        self._output = self._session.get_outputs()[0].name
        self.device = f"cuda:{options.device_id}"
        self._device_id = options.device_id
        self.scale = model.scale
        self.channels = model.channels
        self.halo = model.receptive_field
        log.info("%s session for %s (%s, %s)", self.name, model.name, self.precision, graph.name)

    def _run_bound(self, batch: np.ndarray) -> np.ndarray:
        binding = self._session.io_binding()
        binding.bind_cpu_input(self._input, batch)
        binding.bind_output(self._output, "cuda", self._device_id)
        self._session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Upscale one batch (see ``Engine.run``); with TensorRT, shapes outside its profile are split and tiled."""
        batch = check_batch(batch, self.channels)
        if self.profile is None:
            return self._run_bound(batch)
        return run_within_profile(batch, self._run_bound, self.profile, self.scale, self.halo)
