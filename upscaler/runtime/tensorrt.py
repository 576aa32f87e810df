"""Native TensorRT: build an engine from the ONNX graph (cached), deserialise it, run it on a CUDA stream.

A thin adapter over TensorRT 10's documented Python API: ``OnnxParser``, one
optimisation profile, a timing cache, ``build_serialized_network``; named
I/O tensors with ``set_input_shape``, ``set_tensor_address`` and
``execute_async_v3``. INT8 engines are built from the model's
``int8-symmetric`` graph (``base.tensorrt_graph``), FP16 and FP32 from the
FP32 graph. Device memory, the stream and the device's name come from
PyTorch (``TorchCudaDevice``), which the GPU image ships, so no pycuda is
needed. Everything that needs no TensorRT (profiles, the cache and its
keys, running shapes outside the profile) lives in ``profiles``.

Never executed against the real library: TensorRT and a CUDA device cannot
be had on our machines. ``tests/test_gpu_adapters.py`` runs this module
against a fake of the TensorRT calls it makes (names and signatures from
NVIDIA's TensorRT 10 Python API reference) and a fake ``CudaDevice``; the
fake computes outputs with ONNX Runtime's CPU engine, so the tests check the
calls, cache keys, profiles, buffers and values, not TensorRT's parser,
builder, kernels or speed. ``TorchCudaDevice`` has never run at all.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from upscaler.io import write_atomic
from upscaler.models import ModelDescriptor, sha256_file
from upscaler.runtime.base import EngineOptions, EngineUnavailable, check_batch, choose_precision, tensorrt_graph
from upscaler.runtime.profiles import (
    DEFAULT_PROFILE,
    EngineCache,
    ShapeProfile,
    cache_key,
    default_cache_dir,
    read_plan,
    run_within_profile,
)

__all__ = [
    "CudaDevice",
    "TensorRTEngine",
    "TorchCudaDevice",
    "build_plan",
    "cuda_device",
    "engine_key",
    "import_tensorrt",
    "io_tensors",
    "open_engine",
]

log = logging.getLogger(__name__)

WORKSPACE_BYTES = 4 << 30


def import_tensorrt() -> Any:
    """The ``tensorrt`` module, or ``EngineUnavailable``."""
    try:
        import tensorrt
    except ImportError:
        raise EngineUnavailable("the tensorrt Python package is not installed (it comes from NVIDIA's index)") from None
    return tensorrt


class CudaDevice(Protocol):
    """What the engine needs of a CUDA device: its identity, float32 buffers, a stream."""

    name: str  #: e.g. ``NVIDIA H100 80GB HBM3`` (part of the engine cache key)
    compute_capability: str  #: e.g. ``9.0``

    def current(self) -> AbstractContextManager[Any]:
        """Make this the current device: TensorRT builds, loads and runs on the current one."""
        ...

    def upload(self, array: np.ndarray) -> Any:
        """A device copy of a float32 host array (ordered on ``stream``)."""
        ...

    def empty(self, shape: tuple[int, ...]) -> Any:
        """An uninitialised float32 device buffer of ``shape``."""
        ...

    def address(self, buffer: Any) -> int:
        """The device pointer of a buffer, for ``set_tensor_address``."""
        ...

    def download(self, buffer: Any) -> np.ndarray:
        """Wait for ``stream``, then copy a buffer to the host."""
        ...

    @property
    def stream(self) -> int:
        """The raw ``cudaStream_t`` handle work is enqueued on."""
        ...


class TorchCudaDevice:
    """``CudaDevice`` on PyTorch's CUDA allocator and one stream of its own. Never executed here."""

    def __init__(self, device_id: int) -> None:
        try:
            import torch
        except ImportError:
            raise EngineUnavailable("tensorrt uses PyTorch for CUDA buffers; torch is not installed") from None
        if not torch.cuda.is_available() or device_id >= torch.cuda.device_count():
            raise EngineUnavailable(f"no CUDA device {device_id} visible")
        self._torch = torch
        self._device = torch.device("cuda", device_id)
        self.name = torch.cuda.get_device_name(device_id)
        major, minor = torch.cuda.get_device_capability(device_id)
        self.compute_capability = f"{major}.{minor}"
        self._stream = torch.cuda.Stream(self._device)

    def current(self) -> AbstractContextManager[Any]:
        return self._torch.cuda.device(self._device)

    def upload(self, array: np.ndarray) -> Any:
        with self._torch.cuda.stream(self._stream):  # the copy is ordered before the engine's work
            return self._torch.from_numpy(array).to(self._device)

    def empty(self, shape: tuple[int, ...]) -> Any:
        with self._torch.cuda.stream(self._stream):
            return self._torch.empty(shape, dtype=self._torch.float32, device=self._device)

    def address(self, buffer: Any) -> int:
        return int(buffer.data_ptr())

    def download(self, buffer: Any) -> np.ndarray:
        self._stream.synchronize()
        return buffer.cpu().numpy()

    @property
    def stream(self) -> int:
        return int(self._stream.cuda_stream)


def cuda_device(device_id: int) -> CudaDevice:
    """The CUDA device ``device_id`` (``EngineUnavailable`` if there is none); tests replace this."""
    return TorchCudaDevice(device_id)


def _timing_cache(config: Any, path: Path) -> Any:
    """Attach the timing cache stored at ``path`` to ``config``; a fresh one if it is missing or unusable."""
    previous = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(previous) if previous else None
    if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
        return cache
    if previous:
        log.warning("ignoring the TensorRT timing cache %s (unreadable or made elsewhere)", path)
    cache = config.create_timing_cache(b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    return cache


def keep_grids_fp32(trt: Any, network: Any) -> int:
    """Pin every layer that computes a ``GridSample``'s sampling grid (and the sampler) to FP32; returns how many.

    A temporal step reprojects its history with ``GridSample``; in FP16 its grid coordinates (normalised
    to [-1, 1]) are spaced 2^-11 apart near the edges, a pixel or more at 4K: the history lands in the
    wrong place. The PyTorch path keeps them in FP32 (``archs.temporal.reproject``); here the layers
    upstream of the grid input, back to the network's inputs, get FP32 precision and output types (those
    whose outputs are floating point: shape arithmetic stays as it is), which the builder obeys when
    ``OBEY_PRECISION_CONSTRAINTS`` is set. Single-frame graphs have no ``GridSample``: nothing changes.
    """
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    producer = {layer.get_output(k).name: layer for layer in layers for k in range(layer.num_outputs)}
    samplers = [layer for layer in layers if layer.type == trt.LayerType.GRID_SAMPLE]
    pinned = {layer.name: layer for layer in samplers}
    todo = [layer.get_input(1) for layer in samplers]
    while todo:
        tensor = todo.pop()
        layer = producer.get(tensor.name) if tensor is not None else None
        if layer is None or layer.name in pinned:
            continue
        pinned[layer.name] = layer
        todo += [layer.get_input(j) for j in range(layer.num_inputs)]
    for layer in pinned.values():
        outputs = [layer.get_output(k) for k in range(layer.num_outputs)]
        if all(t.dtype == trt.float32 for t in outputs):
            layer.precision = trt.float32
            for k in range(layer.num_outputs):
                layer.set_output_type(k, trt.float32)
    return len(pinned)


def build_plan(
    trt: Any,
    onnx_path: Path,
    precision: str,
    profile: ShapeProfile,
    timing_cache: Path,
    logger: Any = None,
    shapes: Mapping[str, tuple[tuple[int, ...], ...]] | None = None,
) -> bytes:
    """Parse ``onnx_path`` and build a serialised engine for ``precision`` and ``profile``.

    ``timing_cache`` is read before the build (if present) and written after
    it. INT8 needs a graph with symmetric Q/DQ nodes (its scales are in the
    graph, so there is no calibrator); FP16 is a builder flag on the FP32
    graph. ``shapes`` gives every input's min, opt and max shape for graphs
    with several inputs (``profiles.temporal_shapes``); without it the one
    input takes ``profile``. Runs on the current CUDA device.
    """
    logger = logger or trt.Logger(trt.Logger.WARNING)
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
        if keep_grids_fp32(trt, network):
            config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)  # the Q/DQ graph carries its own scales: no calibrator
    if shapes is None:
        tensor = network.get_input(0)
        shapes = {tensor.name: tuple(profile.full(w, int(tensor.shape[1])) for w in ("min", "opt", "max"))}
    optimisation = builder.create_optimization_profile()
    for name, (lo, mid, hi) in shapes.items():
        optimisation.set_shape(name, lo, mid, hi)
    config.add_optimization_profile(optimisation)
    cache = _timing_cache(config, timing_cache)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineUnavailable(f"TensorRT failed to build an engine from {onnx_path} ({precision})")
    timing_cache.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(timing_cache, bytes(cache.serialize()))
    return bytes(plan)


def engine_key(trt: Any, device: CudaDevice, graph: Path, precision: str, profile: ShapeProfile) -> dict:
    """The engine-cache key of ``graph`` built for ``precision`` and ``profile`` on ``device``."""
    return cache_key(
        onnx_sha256=sha256_file(graph),
        tensorrt=trt.__version__,
        gpu=device.name,
        compute_capability=device.compute_capability,
        precision=precision,
        profile=profile,
    )


def open_engine(
    trt: Any,
    device: CudaDevice,
    model: ModelDescriptor,
    graph: Path,
    key: dict,
    options: EngineOptions,
    *,
    plan_file: Path | None,
    profile: ShapeProfile,
    shapes: Mapping[str, tuple[tuple[int, ...], ...]] | None = None,
) -> tuple[Any, Any, Any, Path]:
    """Runtime, engine, execution context and plan path for ``model``.

    The plan is ``plan_file`` if given, else the cached one for ``key``
    (built from ``graph`` on a miss; a cached plan that does not load is
    evicted). Everything runs on ``device``.
    """
    logger = trt.Logger(trt.Logger.WARNING)
    cache = EngineCache(options.cache_dir or default_cache_dir())
    precision = key["precision"]
    with device.current():
        if plan_file is not None:
            plan, plan_path = read_plan(plan_file), Path(plan_file)
        else:
            plan_path = cache.path(model.name, key)
            plan = cache.load(model.name, key)
            if plan is None:
                log.info("building a TensorRT engine for %s (%s); cached after", model.name, precision)
                timing = cache.timing_cache_for(key)
                plan = build_plan(trt, graph, precision, profile, timing, logger, shapes)
                cache.store(model.name, key, plan)
        runtime = trt.Runtime(logger)
        engine = runtime.deserialize_cuda_engine(plan)
        if engine is None:
            if plan_file is None:
                cache.evict(model.name, key)
            raise EngineUnavailable(
                f"TensorRT could not load the engine for {model.name} "
                f"({plan_file or 'cache'}: built by another TensorRT version, or broken)"
            )
        return runtime, engine, engine.create_execution_context(), plan_path


def io_tensors(trt: Any, engine: Any) -> tuple[list[str], list[str], list[str]]:
    """An engine's tensor names: all of them, its inputs and its outputs (each in the engine's order)."""
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    modes = {n: engine.get_tensor_mode(n) for n in names}
    inputs = [n for n in names if modes[n] == trt.TensorIOMode.INPUT]
    outputs = [n for n in names if modes[n] == trt.TensorIOMode.OUTPUT]
    return names, inputs, outputs


class TensorRTEngine:
    """A TensorRT engine for one model, precision and shape profile.

    The plan comes from ``plan_file`` if given, else from the engine cache
    (built on a miss, or when the cached one was made for another GPU,
    TensorRT version, precision, profile or graph). The profile it runs
    with is read from the engine itself, so a ``plan_file`` built with
    another profile runs correctly; inputs outside it are split and tiled
    (``profiles.run_within_profile``).
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
        self._device = cuda_device(options.device_id)
        self.precision = choose_precision(self.name, options.precision, ("fp16", "fp32", "int8"))
        graph = tensorrt_graph(model, self.precision)
        self.device = f"cuda:{options.device_id}"
        self.key = engine_key(trt, self._device, graph, self.precision, profile)
        self._runtime, self._engine, self._context, self.plan_path = open_engine(
            trt, self._device, model, graph, self.key, options, plan_file=plan_file, profile=profile
        )
        names, inputs, outputs = io_tensors(trt, self._engine)
        if len(inputs) != 1 or len(outputs) != 1:
            raise EngineUnavailable(f"expected an engine with one input and one output, got {names}")
        if any(self._engine.get_tensor_dtype(n) != trt.DataType.FLOAT for n in names):
            raise EngineUnavailable("expected an engine with float32 input and output (built from our graphs)")
        self._input, self._output = inputs[0], outputs[0]
        shapes = self._engine.get_tensor_profile_shape(self._input, 0)  # min, opt, max as N x C x H x W
        self.profile = ShapeProfile(*((int(s[0]), int(s[2]), int(s[3])) for s in shapes))
        self.scale, self.channels, self.halo = model.scale, model.channels, model.receptive_field

    def _run_fitting(self, batch: np.ndarray) -> np.ndarray:
        device, context = self._device, self._context
        n, c, h, w = batch.shape
        expected = (n, c, h * self.scale, w * self.scale)
        with device.current():
            if not context.set_input_shape(self._input, batch.shape):
                raise RuntimeError(f"TensorRT refused the input shape {batch.shape}")
            shape = tuple(int(d) for d in context.get_tensor_shape(self._output))
            if shape != expected:
                raise RuntimeError(f"TensorRT reports an output of {shape} for {batch.shape}, expected {expected}")
            x, out = device.upload(batch), device.empty(shape)
            if not (
                context.set_tensor_address(self._input, device.address(x))
                and context.set_tensor_address(self._output, device.address(out))
            ):
                raise RuntimeError("TensorRT refused a tensor address")
            if not context.execute_async_v3(device.stream):
                raise RuntimeError("TensorRT execution failed")
            return device.download(out)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Upscale one batch (see ``Engine.run``); shapes outside the profile are split and tiled."""
        batch = check_batch(batch, self.channels)
        return run_within_profile(batch, self._run_fitting, self.profile, self.scale, self.halo)
