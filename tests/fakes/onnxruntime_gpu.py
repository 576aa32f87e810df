"""A fake ``onnxruntime`` as ``onnxruntime-gpu`` would look on a CUDA machine, for ``upscaler.runtime.ort_gpu``.

It offers the surface the adapter calls (``get_available_providers``,
``SessionOptions``, ``GraphOptimizationLevel``, ``InferenceSession(path,
sess_options, providers=...)``, ``get_providers``, ``get_inputs``/``get_outputs``,
``io_binding`` with ``bind_cpu_input``/``bind_ortvalue_input``/``bind_output``/
``run_with_iobinding``/``copy_outputs_to_cpu``/``get_outputs``) and records what was asked of it. Sessions and IO
bindings are real ONNX Runtime CPU ones underneath, so the binding calls are
checked against ONNX Runtime's own signatures and the values are real CPU
results; an output bound to ``cuda`` is bound to the CPU instead.

TensorRT provider options are checked against the option names of ONNX
Runtime's TensorRT execution provider documentation, booleans must parse,
and the ``trt_profile_*_shapes`` must name the graph's real input; the
TensorRT provider "fails" (``set_input_shape`` style) on inputs outside
that profile. Nothing about CUDA, TensorRT or speed is modelled.
"""

from __future__ import annotations

import re
import types
from dataclasses import dataclass, field
from typing import Any

#: Option names of ONNX Runtime's TensorRT execution provider (its documentation's configuration table).
TRT_OPTIONS = {
    "device_id", "user_compute_stream", "trt_max_workspace_size", "trt_max_partition_iterations",
    "trt_min_subgraph_size", "trt_fp16_enable", "trt_bf16_enable", "trt_int8_enable",
    "trt_int8_calibration_table_name", "trt_int8_use_native_calibration_table", "trt_dla_enable", "trt_dla_core",
    "trt_dump_subgraphs", "trt_engine_cache_enable", "trt_engine_cache_path", "trt_engine_cache_prefix",
    "trt_engine_decryption_enable", "trt_engine_decryption_lib_path", "trt_force_sequential_engine_build",
    "trt_context_memory_sharing_enable", "trt_layer_norm_fp32_fallback", "trt_timing_cache_enable",
    "trt_timing_cache_path", "trt_force_timing_cache", "trt_detailed_build_log", "trt_build_heuristics_enable",
    "trt_sparsity_enable", "trt_builder_optimization_level", "trt_auxiliary_streams", "trt_tactic_sources",
    "trt_extra_plugin_lib_paths", "trt_profile_min_shapes", "trt_profile_max_shapes", "trt_profile_opt_shapes",
    "trt_cuda_graph_enable", "trt_dump_ep_context_model", "trt_ep_context_file_path", "trt_ep_context_embed_mode",
}  # fmt: skip
CUDA_OPTIONS = {
    "device_id", "gpu_mem_limit", "arena_extend_strategy", "cudnn_conv_algo_search", "do_copy_in_default_stream",
}  # fmt: skip
BOOLEAN = {"True", "False", "true", "false", "1", "0"}
_SHAPES = re.compile(r"^([^:,]+):(\d+(?:x\d+)*)$")


@dataclass
class Calls:
    sessions: list[dict] = field(default_factory=list)  #: graph path and providers of each session
    #: ("input", name, shape) / ("ortvalue", name, shape) / ("output", name, device, id)
    bindings: list[tuple] = field(default_factory=list)
    runs: list[tuple[int, ...]] = field(default_factory=list)  #: input shapes run


def _profile(options: dict[str, str], which: str) -> dict[str, tuple[int, ...]]:
    out = {}
    for part in options[f"trt_profile_{which}_shapes"].split(","):
        match = _SHAPES.match(part)
        assert match, f"trt_profile_{which}_shapes: {part!r} is not NAME:DxDxD"
        out[match[1]] = tuple(int(d) for d in match[2].split("x"))
    return out


def make_onnxruntime(available: list[str], *, active: list[str] | None = None) -> types.ModuleType:
    """A fake module offering ``available`` providers; sessions report ``active`` (default: what was asked)."""
    import onnxruntime as real

    calls = Calls()

    class IOBinding:
        def __init__(self, session: InferenceSession) -> None:
            self._session = session
            self._real = session._real.io_binding()

        def bind_cpu_input(self, name: str, arr_on_cpu: Any) -> None:
            calls.bindings.append(("input", name, arr_on_cpu.shape))
            self._session._check_profile(name, arr_on_cpu.shape)
            self._real.bind_cpu_input(name, arr_on_cpu)

        def bind_output(
            self, name: str, device_type: str = "cpu", device_id: int = 0, element_type=None, shape=None,
            buffer_ptr=None,
        ) -> None:  # fmt: skip
            calls.bindings.append(("output", name, device_type, device_id))
            self._real.bind_output(name, "cpu", 0, element_type, shape, buffer_ptr)

        def bind_ortvalue_input(self, name: str, ortvalue: Any) -> None:
            assert isinstance(ortvalue, real.OrtValue), "bind_ortvalue_input takes an OrtValue"
            calls.bindings.append(("ortvalue", name, tuple(ortvalue.shape())))
            self._session._check_profile(name, tuple(ortvalue.shape()))
            self._real.bind_ortvalue_input(name, ortvalue)

        def copy_outputs_to_cpu(self) -> list:
            return self._real.copy_outputs_to_cpu()

        def get_outputs(self) -> list:
            return self._real.get_outputs()  # OrtValues (on the CPU here; on the bound device for real)

    class InferenceSession:
        def __init__(self, path_or_bytes: Any, sess_options: Any = None, providers: Any = None, **kw: Any) -> None:
            names = [p if isinstance(p, str) else p[0] for p in providers or []]
            options = [{} if isinstance(p, str) else dict(p[1]) for p in providers or []]
            for name, opts in zip(names, options):
                assert all(isinstance(v, str) for v in opts.values()), f"{name}: provider option values are strings"
                if name == "TensorrtExecutionProvider":
                    unknown = set(opts) - TRT_OPTIONS
                    assert not unknown, f"unknown TensorRT provider options: {sorted(unknown)}"
                    for key, value in opts.items():
                        if key.endswith(("_enable",)):
                            assert value in BOOLEAN, f"{key}={value!r} is not a boolean ONNX Runtime parses"
                elif name == "CUDAExecutionProvider":
                    assert not set(opts) - CUDA_OPTIONS, f"unknown CUDA provider options: {set(opts) - CUDA_OPTIONS}"
            self._real = real.InferenceSession(path_or_bytes, sess_options, providers=["CPUExecutionProvider"])
            self._providers = [p for p in (active or names) if p in available] + ["CPUExecutionProvider"]
            self._profile = None
            if names and names[0] == "TensorrtExecutionProvider":
                trt = options[0]
                self._profile = {w: _profile(trt, w) for w in ("min", "opt", "max")}
                dynamic = {i.name for i in self._real.get_inputs()}
                for which, shapes in self._profile.items():
                    assert set(shapes) == dynamic, f"trt_profile_{which}_shapes names {set(shapes)}, inputs {dynamic}"
            calls.sessions.append({"path": str(path_or_bytes), "providers": list(zip(names, options))})

        def _check_profile(self, name: str, shape: tuple[int, ...]) -> None:
            if self._profile is None:
                return
            lo, hi = self._profile["min"][name], self._profile["max"][name]
            if len(shape) != len(lo) or not all(a <= s <= b for a, s, b in zip(lo, shape, hi)):
                raise RuntimeError(f"TensorRT EP: input {name} of shape {shape} is outside the profile {lo}..{hi}")

        def get_providers(self) -> list[str]:
            return list(self._providers)

        def get_inputs(self) -> list:
            return self._real.get_inputs()

        def get_outputs(self) -> list:
            return self._real.get_outputs()

        def io_binding(self) -> IOBinding:
            return IOBinding(self)

        def run_with_iobinding(self, iobinding: IOBinding, run_options: Any = None) -> None:
            assert isinstance(iobinding, IOBinding), "run_with_iobinding takes this session's io_binding()"
            calls.runs.append(next(b[2] for b in reversed(calls.bindings) if b[0] == "input"))
            self._real.run_with_iobinding(iobinding._real, run_options)

        def run(self, output_names: Any, input_feed: dict, run_options: Any = None) -> list:
            for name, value in input_feed.items():
                self._check_profile(name, value.shape)
            return self._real.run(output_names, input_feed, run_options)

    module = types.ModuleType("onnxruntime")
    module.__version__ = f"{real.__version__}+fake-gpu"
    module.calls = calls
    module.SessionOptions = real.SessionOptions
    module.GraphOptimizationLevel = real.GraphOptimizationLevel
    module.InferenceSession = InferenceSession
    module.get_available_providers = lambda: list(available)
    return module
