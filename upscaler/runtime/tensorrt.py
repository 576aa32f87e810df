"""Native TensorRT: build an engine from the ONNX graph (cached), deserialise it, run it on a CUDA stream.

A thin adapter over TensorRT's documented Python API (TensorRT 10: named
I/O tensors, ``set_input_shape``, ``set_tensor_address``,
``execute_async_v3``). Device buffers and the stream come from PyTorch,
which the GPU image ships, so no pycuda is needed. Everything that needs no
TensorRT (profiles, the cache and its keys, tiling outside the profile)
lives in ``profiles`` and is tested there.

Not executed on any machine of ours: TensorRT cannot be installed here.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from upscaler.io import write_atomic
from upscaler.models import ModelDescriptor, sha256_file
from upscaler.runtime.base import EngineOptions, EngineUnavailable, check_batch, choose_precision, require_graph
from upscaler.runtime.profiles import (
    DEFAULT_PROFILE,
    EngineCache,
    ShapeProfile,
    cache_key,
    default_cache_dir,
    read_plan,
    run_within_profile,
)

__all__ = ["TensorRTEngine", "build_plan", "import_tensorrt"]

log = logging.getLogger(__name__)

WORKSPACE_BYTES = 4 << 30


def import_tensorrt():
    """The ``tensorrt`` module, or ``EngineUnavailable``."""
    try:
        import tensorrt
    except ImportError:
        raise EngineUnavailable("the tensorrt Python package is not installed (it comes from NVIDIA's index)") from None
    return tensorrt


def _cuda_torch(device_id: int):
    try:
        import torch
    except ImportError:
        raise EngineUnavailable("tensorrt uses PyTorch for CUDA buffers; torch is not installed") from None
    if not torch.cuda.is_available() or device_id >= torch.cuda.device_count():
        raise EngineUnavailable(f"no CUDA device {device_id} visible")
    return torch


def build_plan(trt, onnx_path: Path, precision: str, profile: ShapeProfile, timing_cache: Path) -> bytes:
    """Parse ``onnx_path`` and build a serialised engine for ``precision`` and ``profile``."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineUnavailable(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)  # the QDQ graph carries its own scales: no calibrator
    shapes = builder.create_optimization_profile()
    name = network.get_input(0).name
    channels = network.get_input(0).shape[1]
    shapes.set_shape(name, *(profile.full(w, channels) for w in ("min", "opt", "max")))
    config.add_optimization_profile(shapes)
    previous = timing_cache.read_bytes() if timing_cache.is_file() else b""
    cache = config.create_timing_cache(previous)
    config.set_timing_cache(cache, ignore_mismatch=False)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineUnavailable(f"TensorRT failed to build an engine from {onnx_path} ({precision})")
    timing_cache.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(timing_cache, bytes(config.get_timing_cache().serialize()))
    return bytes(plan)


class TensorRTEngine:
    """A TensorRT engine for one model, precision and shape profile.

    The plan comes from ``plan_file`` if given, else from the engine cache
    (built on a miss, or when the cached one was made for another GPU,
    TensorRT version, precision, profile or graph). Inputs outside the
    profile are split and tiled (``profiles.run_within_profile``).
    """

    name = "tensorrt"

    def __init__(
        self,
        model: ModelDescriptor,
        options: EngineOptions | None = None,
        *,
        profile: ShapeProfile = DEFAULT_PROFILE,
        plan_file: Path | None = None,
    ) -> None:
        options = options or EngineOptions()
        trt = import_tensorrt()
        torch = _cuda_torch(options.device_id)
        self.precision = choose_precision(self.name, options.precision, ("fp16", "fp32", "int8"))
        graph = require_graph(model, "int8" if self.precision == "int8" else "fp32")
        self.device = f"cuda:{options.device_id}"
        major, minor = torch.cuda.get_device_capability(options.device_id)
        self.key = cache_key(
            onnx_sha256=sha256_file(graph),
            tensorrt=trt.__version__,
            gpu=torch.cuda.get_device_name(options.device_id),
            compute_capability=f"{major}.{minor}",
            precision=self.precision,
            profile=profile,
        )
        cache = EngineCache(options.cache_dir or default_cache_dir())
        if plan_file is not None:
            plan = read_plan(plan_file)
        else:
            plan = cache.load(model.name, self.key)
            if plan is None:
                log.info("building a TensorRT engine for %s (%s); cached after", model.name, self.precision)
                plan = build_plan(trt, graph, self.precision, profile, cache.timing_cache)
                self.plan_path = cache.store(model.name, self.key, plan)
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self._engine = self._runtime.deserialize_cuda_engine(plan)
        if self._engine is None:
            if plan_file is None:
                cache.evict(model.name, self.key)
            raise EngineUnavailable(
                f"TensorRT could not load the engine for {model.name} "
                f"({plan_file or 'cache'}: built by another TensorRT version, or broken)"
            )
        self._context = self._engine.create_execution_context()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        self._input = next(n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        self._output = next(n for n in names if n != self._input)
        self._torch, self._stream = torch, torch.cuda.Stream(self.device)
        self.profile, self.scale, self.channels = profile, model.scale, model.channels
        self.halo = model.receptive_field

    def _run_fitting(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        n, c, h, w = batch.shape
        x = torch.from_numpy(batch).to(self.device)
        out = torch.empty((n, c, h * self.scale, w * self.scale), dtype=torch.float32, device=self.device)
        self._context.set_input_shape(self._input, (n, c, h, w))
        self._context.set_tensor_address(self._input, x.data_ptr())
        self._context.set_tensor_address(self._output, out.data_ptr())
        self._stream.wait_stream(torch.cuda.current_stream(self.device))  # the upload is done
        if not self._context.execute_async_v3(self._stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed")
        self._stream.synchronize()
        return out.cpu().numpy()

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Upscale one batch (see ``Engine.run``); shapes outside the profile are split and tiled."""
        batch = check_batch(batch, self.channels)
        return run_within_profile(batch, self._run_fitting, self.profile, self.scale, self.halo)
