"""A fake ``tensorrt`` module: the part of TensorRT 10's Python API that ``upscaler.runtime.tensorrt`` calls.

Names and signatures follow NVIDIA's TensorRT 10 Python API reference
(``Builder.create_network(flags)``, ``IBuilderConfig.set_memory_pool_limit(pool,
pool_size)``, ``set_flag``, ``add_optimization_profile``,
``create_timing_cache(serialized_timing_cache)``, ``set_timing_cache(cache,
ignore_mismatch)``, ``IOptimizationProfile.set_shape(input, min, opt, max)``,
``build_serialized_network(network, config)``,
``Runtime.deserialize_cuda_engine(serialized_engine)``, ``ICudaEngine``'s
``num_io_tensors``/``get_tensor_name``/``get_tensor_mode``/``get_tensor_dtype``/
``get_tensor_profile_shape``, ``IExecutionContext``'s ``set_input_shape``/
``get_tensor_shape``/``set_tensor_address``/``execute_async_v3(stream_handle)``),
with the argument types checked the way the pybind11 bindings do.

What it mimics beyond names: the ONNX parser refuses Q/DQ nodes with a
non-zero zero point (TensorRT accepts only symmetric INT8); a network with
Q/DQ nodes builds only with ``BuilderFlag.INT8``; the build needs one valid
profile covering the dynamic input; a plan from another TensorRT version
does not deserialise; ``set_input_shape`` refuses shapes outside the profile.

What it is not: a "plan" is a JSON header plus the parsed ONNX bytes, and
``execute_async_v3`` runs those bytes with ONNX Runtime's CPU engine in FP32
whatever the precision flags, reading and writing the fake device's buffers
by address, with one exception: an FP16 build rounds the sampling grid of
every ``GridSample`` to half precision unless the layers computing it are
pinned to FP32 and ``OBEY_PRECISION_CONSTRAINTS`` is set (what TensorRT's
FP16 does to 4K positions). No speed or other numerics or kernel behaviour
of TensorRT is modelled.
Every call that matters is recorded in ``module.calls``.
"""

from __future__ import annotations

import enum
import hashlib
import json
import types
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PLAN_MAGIC = b"FAKE-TRT-PLAN\n"
CACHE_MAGIC = b"FAKE-TRT-TIMING\n"


@dataclass
class Calls:
    """What the adapter did, for the tests to assert on."""

    parsed: list[bytes] = field(default_factory=list)  #: ONNX bytes given to ``OnnxParser.parse``
    builds: list[dict] = field(default_factory=list)  #: one record per ``build_serialized_network``
    deserialized: int = 0  #: successful ``deserialize_cuda_engine`` calls
    input_shapes: list[tuple[int, ...]] = field(default_factory=list)  #: accepted ``set_input_shape`` shapes
    addresses: list[tuple[str, int]] = field(default_factory=list)  #: ``set_tensor_address`` calls
    executions: list[dict] = field(default_factory=list)  #: one record per ``execute_async_v3``


def _dims(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple | list) or not all(isinstance(d, int | np.integer) for d in value):
        raise TypeError(f"{what}: expected Dims (a tuple of ints), got {value!r}")
    return tuple(int(d) for d in value)


def _check(value: Any, kind: type, what: str) -> None:
    if not isinstance(value, kind):
        got = type(value).__name__
        raise TypeError(f"{what}: incompatible function arguments: expected {kind.__name__}, got {got}")


def make_tensorrt(device: Any, version: str = "10.3.0") -> types.ModuleType:
    """A fresh fake ``tensorrt`` module whose engines read and write ``device``'s buffers (a ``FakeCudaDevice``)."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    calls = Calls()

    class Severity(enum.IntEnum):
        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2
        INFO = 3
        VERBOSE = 4

    class Logger:
        INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = (Severity(i) for i in range(5))

        def __init__(self, min_severity: Severity = Severity.WARNING) -> None:
            _check(min_severity, Severity, "Logger(min_severity)")
            self.min_severity = min_severity

    class MemoryPoolType(enum.Enum):
        WORKSPACE = 0
        DLA_MANAGED_SRAM = 1
        DLA_LOCAL_DRAM = 2
        DLA_GLOBAL_DRAM = 3
        TACTIC_DRAM = 4

    class BuilderFlag(enum.Enum):
        FP16 = 0
        INT8 = 1
        DEBUG = 2
        GPU_FALLBACK = 3
        REFIT = 4
        TF32 = 5
        BF16 = 6
        OBEY_PRECISION_CONSTRAINTS = 7
        PREFER_PRECISION_CONSTRAINTS = 8

    class LayerType(enum.Enum):  # the ones our graphs hold, and OTHER for the rest
        CONVOLUTION = 0
        ELEMENTWISE = 1
        CONSTANT = 2
        SHUFFLE = 3
        RESIZE = 4
        GRID_SAMPLE = 5
        OTHER = 6

    class TensorIOMode(enum.Enum):
        NONE = 0
        INPUT = 1
        OUTPUT = 2

    class DataType(enum.Enum):
        FLOAT = 0
        HALF = 1
        INT8 = 2
        INT32 = 3

    class NetworkDefinitionCreationFlag(enum.Enum):
        EXPLICIT_BATCH = 0  # deprecated and ignored in TensorRT 10
        STRONGLY_TYPED = 1

    @dataclass
    class ITensor:
        name: str
        shape: tuple[int, ...]
        dtype: Any

    class ILayer:
        """One ONNX node as a layer: its type, tensors, and the precision constraints set on it."""

        def __init__(self, name: str, type: LayerType, inputs: list, outputs: list) -> None:
            self.name, self.type, self._inputs, self._outputs = name, type, inputs, outputs
            self._precision = None
            self.output_types: dict[int, Any] = {}

        @property
        def num_inputs(self) -> int:
            return len(self._inputs)

        @property
        def num_outputs(self) -> int:
            return len(self._outputs)

        def get_input(self, index: int) -> ITensor | None:
            _check(index, int, "ILayer.get_input(index)")
            return self._inputs[index]

        def get_output(self, index: int) -> ITensor:
            _check(index, int, "ILayer.get_output(index)")
            return self._outputs[index]

        @property
        def precision(self) -> Any:
            return self._precision if self._precision is not None else DataType.FLOAT

        @precision.setter
        def precision(self, value: Any) -> None:
            _check(value, DataType, "ILayer.precision")
            self._precision = value

        @property
        def precision_is_set(self) -> bool:
            return self._precision is not None

        def set_output_type(self, index: int, dtype: Any) -> None:
            _check(index, int, "set_output_type(index)")
            _check(dtype, DataType, "set_output_type(dtype)")
            if not 0 <= index < len(self._outputs):
                raise IndexError(f"layer {self.name} has {len(self._outputs)} outputs")
            self.output_types[index] = dtype

    class INetworkDefinition:
        def __init__(self) -> None:
            self.inputs: list[ITensor] = []
            self.outputs: list[ITensor] = []
            self.layers: list[ILayer] = []
            self.onnx: bytes | None = None
            self.has_qdq = False

        @property
        def num_layers(self) -> int:
            return len(self.layers)

        def get_layer(self, index: int) -> ILayer:
            _check(index, int, "get_layer(index)")
            return self.layers[index]

        @property
        def num_inputs(self) -> int:
            return len(self.inputs)

        @property
        def num_outputs(self) -> int:
            return len(self.outputs)

        def get_input(self, index: int) -> ITensor:
            _check(index, int, "get_input(index)")
            return self.inputs[index]

        def get_output(self, index: int) -> ITensor:
            _check(index, int, "get_output(index)")
            return self.outputs[index]

    class IParserError:
        def __init__(self, text: str) -> None:
            self.text = text

        def desc(self) -> str:
            return self.text

        def __str__(self) -> str:
            return f"In node -1 (fake): {self.text}"

    def _value_info(v) -> ITensor:
        dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim)
        dtype = {onnx.TensorProto.FLOAT: DataType.FLOAT, onnx.TensorProto.FLOAT16: DataType.HALF}.get(
            v.type.tensor_type.elem_type, DataType.INT32
        )
        return ITensor(v.name, dims, dtype)

    _LAYER_TYPES = {"Conv": LayerType.CONVOLUTION, "Constant": LayerType.CONSTANT, "Reshape": LayerType.SHUFFLE,
                    "Transpose": LayerType.SHUFFLE, "Resize": LayerType.RESIZE, "GridSample": LayerType.GRID_SAMPLE,
                    **{op: LayerType.ELEMENTWISE for op in ("Add", "Sub", "Mul", "Div")}}  # fmt: skip

    def _layers(proto) -> list[ILayer]:
        """The graph's nodes as layers; tensor types from ONNX shape inference (floating point by default)."""
        inferred = onnx.shape_inference.infer_shapes(proto)
        values = [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
        tensors = {v.name: _value_info(v) for v in values}
        tensor = lambda name: tensors.get(name) or ITensor(name, (), DataType.FLOAT)  # noqa: E731
        layers = []
        for i, node in enumerate(proto.graph.node):
            kind = _LAYER_TYPES.get(node.op_type, LayerType.OTHER)
            inputs, outputs = [tensor(n) if n else None for n in node.input], [tensor(n) for n in node.output]
            layers.append(ILayer(node.name or f"{node.op_type}_{i}", kind, inputs, outputs))
        return layers

    def _grids_in_fp16(network: INetworkDefinition, config: IBuilderConfig) -> list[str]:
        """The grid inputs of ``GridSample`` layers an FP16 build would compute in half precision: all of
        them unless ``OBEY_PRECISION_CONSTRAINTS`` is set and every floating-point layer upstream of the grid
        (and the sampler) has FP32 precision and output types."""
        if BuilderFlag.FP16 not in config.flags:
            return []
        producer = {t.name: layer for layer in network.layers for t in layer._outputs}
        obeyed = BuilderFlag.OBEY_PRECISION_CONSTRAINTS in config.flags

        def fp32(layer: ILayer) -> bool:
            if any(t.dtype != DataType.FLOAT for t in layer._outputs):
                return True  # shape arithmetic: no precision to keep
            return (layer.precision_is_set and layer.precision == DataType.FLOAT
                    and all(layer.output_types.get(k) == DataType.FLOAT for k in range(layer.num_outputs)))  # fmt: skip

        loose = []
        for sampler in (layer for layer in network.layers if layer.type == LayerType.GRID_SAMPLE):
            seen, todo, kept = set(), [sampler.get_input(1)], obeyed and fp32(sampler)
            while todo and kept:
                t = todo.pop()
                layer = producer.get(t.name) if t is not None else None
                if layer is None or layer.name in seen:
                    continue
                seen.add(layer.name)
                kept = fp32(layer)
                todo += layer._inputs
            if not kept:
                loose.append(sampler.get_input(1).name)
        return loose

    def _round_to_half(data: bytes, names: list[str]) -> bytes:
        """The ONNX graph with each of ``names`` rounded to FP16 and back where it is read (what half
        precision does to a grid of sampling positions)."""
        proto = onnx.load_from_string(data)
        nodes = []
        for name in names:
            half, back = f"{name}__fp16", f"{name}__fp16_back"
            nodes += [onnx.helper.make_node("Cast", [name], [half], to=onnx.TensorProto.FLOAT16),
                      onnx.helper.make_node("Cast", [half], [back], to=onnx.TensorProto.FLOAT)]  # fmt: skip
            for node in proto.graph.node:
                node.input[:] = [back if n == name else n for n in node.input]
        order = list(proto.graph.node)
        where = max(i for i, node in enumerate(order) if set(node.output) & set(names)) + 1
        del proto.graph.node[:]
        proto.graph.node.extend(order[:where] + nodes + order[where:])
        return proto.SerializeToString()

    class OnnxParser:
        def __init__(self, network: INetworkDefinition, logger: Logger) -> None:
            _check(network, INetworkDefinition, "OnnxParser(network)")
            _check(logger, Logger, "OnnxParser(logger)")
            self.network = network
            self.errors: list[IParserError] = []

        @property
        def num_errors(self) -> int:
            return len(self.errors)

        def get_error(self, index: int) -> IParserError:
            return self.errors[index]

        def parse(self, model: bytes, path: str | None = None) -> bool:
            _check(model, bytes | bytearray | memoryview, "OnnxParser.parse(model)")
            data = bytes(model)
            calls.parsed.append(data)
            try:
                proto = onnx.load_from_string(data)
            except Exception as exc:
                self.errors.append(IParserError(f"not an ONNX model: {exc}"))
                return False
            constants = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
            for node in proto.graph.node:
                if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
                    self.network.has_qdq = True
                    zero = node.input[2] if len(node.input) > 2 else ""
                    if zero and np.any(constants.get(zero, np.zeros(1)) != 0):
                        text = f"{node.name}: TensorRT supports only symmetric INT8 (zero point 0)"
                        self.errors.append(IParserError(text))
            if self.errors:
                return False
            self.network.inputs = [_value_info(v) for v in proto.graph.input if v.name not in constants]
            self.network.outputs = [_value_info(v) for v in proto.graph.output]
            self.network.layers = _layers(proto)
            self.network.onnx = data
            return True

    class IOptimizationProfile:
        def __init__(self) -> None:
            self.shapes: dict[str, tuple[tuple[int, ...], ...]] = {}

        def set_shape(self, input: str, min: Any, opt: Any, max: Any) -> None:
            _check(input, str, "set_shape(input)")
            self.shapes[input] = (_dims(min, "min"), _dims(opt, "opt"), _dims(max, "max"))

        def get_shape(self, input: str) -> list[tuple[int, ...]]:
            return list(self.shapes[input])

    class ITimingCache:
        def __init__(self, entries: list[str]) -> None:
            self.entries = entries

        def serialize(self) -> bytes:
            return CACHE_MAGIC + json.dumps(self.entries).encode()

    class IBuilderConfig:
        def __init__(self) -> None:
            self.pools: dict[Any, int] = {}
            self.flags: set[Any] = set()
            self.profiles: list[IOptimizationProfile] = []
            self.timing_cache: ITimingCache | None = None

        def set_memory_pool_limit(self, pool: MemoryPoolType, pool_size: int) -> None:
            _check(pool, MemoryPoolType, "set_memory_pool_limit(pool)")
            _check(pool_size, int, "set_memory_pool_limit(pool_size)")
            self.pools[pool] = pool_size

        def get_memory_pool_limit(self, pool: MemoryPoolType) -> int:
            return self.pools.get(pool, 0)

        def set_flag(self, flag: BuilderFlag) -> None:
            _check(flag, BuilderFlag, "set_flag(flag)")
            self.flags.add(flag)

        def clear_flag(self, flag: BuilderFlag) -> None:
            self.flags.discard(flag)

        def get_flag(self, flag: BuilderFlag) -> bool:
            return flag in self.flags

        def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
            _check(profile, IOptimizationProfile, "add_optimization_profile(profile)")
            self.profiles.append(profile)
            return len(self.profiles) - 1

        def create_timing_cache(self, serialized_timing_cache: Any) -> ITimingCache | None:
            data = bytes(serialized_timing_cache)
            if not data:
                return ITimingCache([])
            if not data.startswith(CACHE_MAGIC):
                return None  # TensorRT logs an error and returns nullptr for a cache it cannot read
            return ITimingCache(json.loads(data[len(CACHE_MAGIC) :]))

        def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
            _check(cache, ITimingCache, "set_timing_cache(cache)")
            _check(ignore_mismatch, bool, "set_timing_cache(ignore_mismatch)")
            self.timing_cache = cache
            return True

        def get_timing_cache(self) -> ITimingCache | None:
            return self.timing_cache

    class Builder:
        def __init__(self, logger: Logger) -> None:
            _check(logger, Logger, "Builder(logger)")

        def create_network(self, flags: int = 0) -> INetworkDefinition:
            _check(flags, int, "create_network(flags)")
            return INetworkDefinition()

        def create_builder_config(self) -> IBuilderConfig:
            return IBuilderConfig()

        def create_optimization_profile(self) -> IOptimizationProfile:
            return IOptimizationProfile()

        def build_serialized_network(self, network: INetworkDefinition, config: IBuilderConfig) -> bytes | None:
            _check(network, INetworkDefinition, "build_serialized_network(network)")
            _check(config, IBuilderConfig, "build_serialized_network(config)")
            if network.onnx is None or len(config.profiles) != 1:
                return None
            (profile,) = config.profiles
            for tensor in network.inputs:
                if tensor.name not in profile.shapes:
                    return None  # a dynamic input without a profile: TensorRT refuses to build
                for dims in zip(*profile.shapes[tensor.name]):
                    if not 1 <= dims[0] <= dims[1] <= dims[2]:
                        return None
                for fixed, dims in zip(tensor.shape, zip(*profile.shapes[tensor.name])):
                    if fixed != -1 and set(dims) != {fixed}:
                        return None
            if network.has_qdq and BuilderFlag.INT8 not in config.flags:
                return None  # Q/DQ nodes need the INT8 flag in a weakly typed network
            sha = hashlib.sha256(network.onnx).hexdigest()
            loose = _grids_in_fp16(network, config)
            calls.builds.append(
                {
                    "onnx_sha256": sha,
                    "flags": sorted(f.name for f in config.flags),
                    "workspace": config.pools.get(MemoryPoolType.WORKSPACE),
                    "profile": dict(profile.shapes),
                    "timing_cache_in": list(config.timing_cache.entries) if config.timing_cache else None,
                    "device": device.name,
                    "device_active": device.active > 0,
                    "fp16_grids": loose,
                }
            )
            if config.timing_cache is not None:
                config.timing_cache.entries.append(f"{device.name}:{sha[:12]}")
            header = {
                "version": version,
                "flags": sorted(f.name for f in config.flags),
                "inputs": [[t.name, list(t.shape)] for t in network.inputs],
                "outputs": [[t.name, list(t.shape)] for t in network.outputs],
                "profile": {k: [list(s) for s in v] for k, v in profile.shapes.items()},
            }
            graph = _round_to_half(network.onnx, loose) if loose else network.onnx
            return PLAN_MAGIC + json.dumps(header).encode() + b"\n" + graph

    class IExecutionContext:
        def __init__(self, engine: ICudaEngine) -> None:
            self.engine = engine
            self.shapes: dict[str, tuple[int, ...]] = {}
            self.addresses: dict[str, int] = {}

        def set_input_shape(self, name: str, shape: Any) -> bool:
            _check(name, str, "set_input_shape(name)")
            shape = _dims(shape, "set_input_shape(shape)")
            lo, _, hi = self.engine.profile[name]
            if len(shape) != len(lo) or not all(a <= s <= b for a, s, b in zip(lo, shape, hi)):
                return False  # TensorRT logs an error: outside the optimisation profile
            self.shapes[name] = shape
            calls.input_shapes.append(shape)
            return True

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            if name in self.engine.inputs:
                return self.shapes.get(name, self.engine.inputs[name])
            if set(self.engine.inputs) - set(self.shapes):
                return self.engine.outputs[name]
            if len(self.engine.inputs) > 1:  # shape inference: run the graph on zeros of the shapes set
                feeds = {k: np.zeros(v, np.float32) for k, v in self.shapes.items()}
                return tuple(self.engine.session.run([name], feeds)[0].shape)
            ((_, (n, c, h, w)),) = self.shapes.items()
            return (n, c, h * self.engine.scale, w * self.engine.scale)

        def set_tensor_address(self, name: str, memory: int) -> bool:
            _check(name, str, "set_tensor_address(name)")
            _check(memory, int, "set_tensor_address(memory)")
            if name not in self.engine.inputs and name not in self.engine.outputs:
                return False
            self.addresses[name] = memory
            calls.addresses.append((name, memory))
            return True

        def execute_async_v3(self, stream_handle: int) -> bool:
            _check(stream_handle, int, "execute_async_v3(stream_handle)")
            (outp,) = self.engine.outputs
            if set(self.engine.inputs) - set(self.shapes) or {*self.engine.inputs, outp} - set(self.addresses):
                return False  # shapes and addresses must all be set first
            feeds = {}
            for inp in self.engine.inputs:
                x = device.lookup(self.addresses[inp])
                if x.shape != self.shapes[inp]:
                    raise AssertionError(f"{inp} buffer {x.shape} does not hold the shape set, {self.shapes[inp]}")
                feeds[inp] = x
            y = device.lookup(self.addresses[outp])
            if any(y is x or np.shares_memory(x, y) for x in feeds.values()):
                raise AssertionError("the output buffer is also bound as an input (TensorRT does not allow aliasing)")
            result = self.engine.session.run(None, feeds)[0]
            if y.size < result.size:
                raise AssertionError(f"output buffer of {y.shape} too small for {result.shape}")
            y.reshape(-1)[: result.size] = result.reshape(-1)
            first = next(iter(feeds.values()))
            calls.executions.append(
                {"stream": stream_handle, "input": first.shape, "inputs": {k: v.shape for k, v in feeds.items()},
                 "output": result.shape, "device_active": device.active > 0}
            )  # fmt: skip
            return True

    class ICudaEngine:
        def __init__(self, header: dict, onnx_bytes: bytes) -> None:
            self.inputs = {name: tuple(shape) for name, shape in header["inputs"]}
            self.outputs = {name: tuple(shape) for name, shape in header["outputs"]}
            self.profile = {k: [tuple(s) for s in v] for k, v in header["profile"].items()}
            self.flags = header["flags"]
            self.session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
            self.scale = None  # known for single-input graphs; others infer output shapes by running
            if len(self.inputs) == 1:
                ((inp, shape),) = self.inputs.items()
                probe = self.session.run(None, {inp: np.zeros((1, shape[1], 2, 2), np.float32)})[0]
                self.scale = probe.shape[2] // 2
            self._names = [*self.inputs, *self.outputs]

        @property
        def num_io_tensors(self) -> int:
            return len(self._names)

        @property
        def num_optimization_profiles(self) -> int:
            return 1

        def get_tensor_name(self, index: int) -> str:
            _check(index, int, "get_tensor_name(index)")
            return self._names[index]

        def get_tensor_mode(self, name: str) -> TensorIOMode:
            _check(name, str, "get_tensor_mode(name)")
            if name in self.inputs:
                return TensorIOMode.INPUT
            return TensorIOMode.OUTPUT if name in self.outputs else TensorIOMode.NONE

        def get_tensor_dtype(self, name: str) -> DataType:
            return DataType.FLOAT

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            return self.inputs.get(name) or self.outputs[name]

        def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[tuple[int, ...]]:
            _check(name, str, "get_tensor_profile_shape(name)")
            _check(profile_index, int, "get_tensor_profile_shape(profile_index)")
            if profile_index != 0:
                raise IndexError("profile index out of range")
            return list(self.profile[name])

        def create_execution_context(self) -> IExecutionContext:
            return IExecutionContext(self)

    class Runtime:
        def __init__(self, logger: Logger) -> None:
            _check(logger, Logger, "Runtime(logger)")

        def deserialize_cuda_engine(self, serialized_engine: Any) -> ICudaEngine | None:
            data = bytes(serialized_engine)
            if not data.startswith(PLAN_MAGIC):
                return None
            head, _, onnx_bytes = data[len(PLAN_MAGIC) :].partition(b"\n")
            header = json.loads(head)
            if header["version"] != version:
                return None  # plans are tied to the TensorRT version that built them
            calls.deserialized += 1
            return ICudaEngine(header, onnx_bytes)

    module = types.ModuleType("tensorrt")
    module.__version__ = version
    module.calls = calls
    for obj in (
        Logger, MemoryPoolType, BuilderFlag, TensorIOMode, DataType, NetworkDefinitionCreationFlag, Builder,
        OnnxParser, Runtime, ITimingCache, IBuilderConfig, IOptimizationProfile, INetworkDefinition, ICudaEngine,
        IExecutionContext, LayerType, ILayer,
    ):  # fmt: skip
        setattr(module, obj.__name__, obj)
    module.float32, module.float16 = DataType.FLOAT, DataType.HALF
    module.int8, module.int32 = DataType.INT8, DataType.INT32
    module.ILogger = types.SimpleNamespace(Severity=Severity)
    return module


def plan_header(plan: bytes) -> dict:
    """The JSON header of a fake plan: the version, flags, I/O and profile it was built with."""
    assert plan.startswith(PLAN_MAGIC), "not a fake TensorRT plan"
    header = json.loads(plan[len(PLAN_MAGIC) :].partition(b"\n")[0])
    header["profile"] = {k: tuple(tuple(s) for s in v) for k, v in header["profile"].items()}
    return header
