"""The TensorRT and onnxruntime-gpu adapters, run against fakes of the library calls they make.

Neither library can be installed here, so ``tests/fakes`` stands in for them
(and for the CUDA device): the fakes check names, signatures and call order
against the documented APIs and record what the adapters asked for, and
compute outputs with ONNX Runtime's CPU engine, so values are compared with
a real CPU run. Nothing here says anything about TensorRT's numerics or speed.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as real_ort
import pytest
from onnx import helper, numpy_helper

from tests.fakes import install_fake_tensorrt
from tests.fakes.onnxruntime_gpu import make_onnxruntime
from tests.fakes.tensorrt import make_tensorrt, plan_header
from upscaler.models import ModelFile, get_model
from upscaler.runtime.base import EngineOptions, EngineUnavailable
from upscaler.runtime.ort_gpu import OrtGpuEngine
from upscaler.runtime.profiles import parse_profile
from upscaler.runtime.tensorrt import TensorRTEngine, build_plan

PROFILE = parse_profile("1x16x16:1x32x32:2x40x48")
OTHER = parse_profile("1x8x8:1x24x24:4x64x64")


def cpu_run(graph: Path, batch: np.ndarray) -> np.ndarray:
    """The real ONNX Runtime CPU result of ``graph`` on ``batch``."""
    session = real_ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: batch})[0]


def frames(set5, count: int, h: int, w: int) -> np.ndarray:
    names = ["bird", "baby", "woman", "butterfly", "head"][:count]
    return np.ascontiguousarray(np.stack([set5[n][:h, :w].transpose(2, 0, 1) for n in names]), np.float32) / 255


def symmetric_qdq(source: Path, out: Path) -> Path:
    """``source`` with a Q/DQ pair (int8, zero point 0) on its input: a small symmetric QDQ graph we control."""
    model = onnx.load(str(source))
    graph = model.graph
    name = graph.input[0].name
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array(1 / 127, np.float32), "q_scale"),
            numpy_helper.from_array(np.int8(0), "q_zero"),
        ]
    )
    for node in graph.node:
        node.input[:] = ["q_dequantized" if n == name else n for n in node.input]
    graph.node.insert(0, helper.make_node("QuantizeLinear", [name, "q_scale", "q_zero"], ["q_quantized"]))
    graph.node.insert(1, helper.make_node("DequantizeLinear", ["q_quantized", "q_scale", "q_zero"], ["q_dequantized"]))
    onnx.save(model, str(out))
    return out


def renamed_copy(source: Path, out: Path, input_name: str = "input") -> Path:
    """``source`` with another doc string (so another hash) and, optionally, its input renamed."""
    model = onnx.load(str(source))
    model.doc_string = f"copy of {source.name}"
    old = model.graph.input[0].name
    model.graph.input[0].name = input_name
    for node in model.graph.node:
        node.input[:] = [input_name if n == old else n for n in node.input]
    onnx.save(model, str(out))
    return out


@pytest.fixture
def gpu(monkeypatch):
    """A fake CUDA device and a fake ``tensorrt`` module wired into the adapter."""
    return install_fake_tensorrt(monkeypatch)


def trt_calls():
    return sys.modules["tensorrt"].calls


# --- native TensorRT -------------------------------------------------------------------------------------------------


def test_tensorrt_builds_fp16_from_the_fp32_graph_with_the_profile_and_runs_it(gpu, tmp_path, set5):
    model = get_model("x4-fast")
    engine = TensorRTEngine(model, EngineOptions(precision="fp16", cache_dir=tmp_path), profile=PROFILE)
    calls = gpu.trt.calls
    assert calls.parsed == [model.onnx.path.read_bytes()]
    (build,) = calls.builds
    assert build["flags"] == ["FP16"] and build["workspace"] == 4 << 30
    assert build["profile"] == {"input": ((1, 3, 16, 16), (1, 3, 32, 32), (2, 3, 40, 48))}
    assert build["device_active"]  # built on the engine's device
    (timing,) = tmp_path.glob("timing-*.cache")
    assert gpu.device.name in timing.read_text()  # written back after the build
    assert engine.plan_path.is_file() and engine.profile == PROFILE
    assert plan_header(engine.plan_path.read_bytes())["profile"] == build["profile"]

    batch = frames(set5, 2, 36, 44)
    out = engine.run(batch)
    np.testing.assert_allclose(out, cpu_run(model.onnx.path, batch), atol=1e-6)
    assert calls.input_shapes == [(2, 3, 36, 44)]
    (execution,) = calls.executions
    assert execution["stream"] == gpu.device.stream and execution["device_active"]
    addresses = dict(calls.addresses)
    assert set(addresses) == {"input", "output"}
    np.testing.assert_array_equal(gpu.device.lookup(addresses["input"]), batch)
    assert gpu.device.lookup(addresses["output"]).shape == (2, 3, 144, 176)


def test_tensorrt_int8_parses_the_symmetric_graph_never_the_cpu_one(gpu, tmp_path, set5):
    base = get_model("x4-fast")
    symmetric = symmetric_qdq(base.onnx.path, tmp_path / "symmetric.onnx")
    model = replace(base, graphs={**base.graphs, "int8-symmetric": ModelFile(symmetric)})
    engine = TensorRTEngine(model, EngineOptions(precision="int8", cache_dir=tmp_path / "cache"), profile=PROFILE)
    assert gpu.trt.calls.parsed == [symmetric.read_bytes()]
    assert gpu.trt.calls.builds[0]["flags"] == ["FP16", "INT8"]
    batch = frames(set5, 1, 20, 24)
    np.testing.assert_allclose(engine.run(batch), cpu_run(symmetric, batch), atol=1e-6)

    # the fake parser, like TensorRT's, refuses the CPU graph: its activations have zero points
    with pytest.raises(EngineUnavailable, match="symmetric INT8"):
        build_plan(gpu.trt, base.graph("int8").path, "int8", PROFILE, tmp_path / "t.cache")
    without = replace(base, graphs={k: v for k, v in base.graphs.items() if k != "int8-symmetric"})
    with pytest.raises(EngineUnavailable, match="int8 --scheme symmetric"):
        TensorRTEngine(without, EngineOptions(precision="int8", cache_dir=tmp_path / "cache"), profile=PROFILE)


def test_tensorrt_rebuilds_exactly_when_precision_profile_graph_gpu_or_version_change(gpu, tmp_path, monkeypatch):
    model = get_model("x4-fast")

    def engine(precision="fp16", profile=PROFILE, m=model):
        return TensorRTEngine(m, EngineOptions(precision=precision, cache_dir=tmp_path), profile=profile)

    first = engine()
    assert len(gpu.trt.calls.builds) == 1
    again = engine()  # identical: the cached plan is loaded, not rebuilt
    assert len(gpu.trt.calls.builds) == 1 and gpu.trt.calls.deserialized == 2 and again.plan_path == first.plan_path
    engine(precision="fp32")
    assert len(gpu.trt.calls.builds) == 2 and gpu.trt.calls.builds[-1]["flags"] == []
    engine(profile=OTHER)
    assert len(gpu.trt.calls.builds) == 3 and gpu.trt.calls.builds[-1]["profile"]["input"][2] == (4, 3, 64, 64)
    graph = renamed_copy(model.onnx.path, tmp_path / "retrained.onnx")
    engine(m=replace(model, onnx=ModelFile(graph)))
    assert len(gpu.trt.calls.builds) == 4 and gpu.trt.calls.parsed[-1] == graph.read_bytes()
    gpu.device.name = "NVIDIA H200"  # another GPU: another plan and another timing cache
    engine()
    assert len(gpu.trt.calls.builds) == 5 and gpu.trt.calls.builds[-1]["timing_cache_in"] == []
    assert len(list(tmp_path.glob("timing-*.cache"))) == 2
    newer = make_tensorrt(gpu.device, version="10.4.0")
    monkeypatch.setitem(sys.modules, "tensorrt", newer)
    engine()
    assert len(newer.calls.builds) == 1
    assert len(list(tmp_path.glob("x4-fast-*.plan"))) == 6
    gpu.device.name = "NVIDIA H100 80GB HBM3"
    monkeypatch.setitem(sys.modules, "tensorrt", gpu.trt)
    engine()  # everything as at first: reused
    assert len(gpu.trt.calls.builds) == 5


def test_tensorrt_shapes_outside_the_profile_run_inside_it_with_whole_frame_values(gpu, tmp_path, set5):
    model = get_model("x4-fast")
    engine = TensorRTEngine(model, EngineOptions(precision="fp32", cache_dir=tmp_path), profile=PROFILE)
    for batch in (frames(set5, 3, 50, 60), frames(set5, 1, 12, 11)):  # too many and too large; too small
        gpu.trt.calls.input_shapes.clear()
        out = engine.run(batch)
        assert np.abs(out - cpu_run(model.onnx.path, batch)).max() < 1e-5
        assert len(gpu.trt.calls.input_shapes) > 1
        assert all(PROFILE.fits(shape) for shape in gpu.trt.calls.input_shapes)


def test_tensorrt_plan_file_runs_with_the_profile_it_was_built_with(gpu, tmp_path, set5):
    model = get_model("x4-fast")
    built = TensorRTEngine(model, EngineOptions(precision="fp16", cache_dir=tmp_path / "a"), profile=PROFILE)
    plan = tmp_path / "given.plan"
    plan.write_bytes(built.plan_path.read_bytes())
    engine = TensorRTEngine(model, EngineOptions(precision="fp16", cache_dir=tmp_path / "b"), plan_file=plan)
    assert engine.profile == PROFILE and engine.plan_path == plan
    assert len(gpu.trt.calls.builds) == 1  # a given plan is never rebuilt
    batch = frames(set5, 1, 50, 60)  # inside the default profile, outside the plan's
    assert np.abs(engine.run(batch) - cpu_run(model.onnx.path, batch)).max() < 1e-5


def test_tensorrt_broken_caches_are_rebuilt_or_evicted(gpu, tmp_path, caplog):
    model = get_model("x4-fast")
    first = TensorRTEngine(model, EngineOptions(precision="fp16", cache_dir=tmp_path), profile=PROFILE)
    (timing,) = tmp_path.glob("timing-*.cache")
    timing.write_bytes(b"not a timing cache")
    with caplog.at_level(logging.WARNING, logger="upscaler.runtime.tensorrt"):
        TensorRTEngine(model, EngineOptions(precision="fp32", cache_dir=tmp_path), profile=PROFILE)
    assert "ignoring the TensorRT timing cache" in caplog.text
    assert gpu.trt.calls.builds[-1]["timing_cache_in"] == [] and timing.read_bytes().startswith(b"FAKE-TRT-TIMING")
    first.plan_path.write_bytes(b"x" * 100)  # a plan TensorRT cannot deserialise
    with pytest.raises(EngineUnavailable, match="could not load"):
        TensorRTEngine(model, EngineOptions(precision="fp16", cache_dir=tmp_path), profile=PROFILE)
    assert not first.plan_path.exists()  # evicted: the next start rebuilds
    TensorRTEngine(model, EngineOptions(precision="fp16", cache_dir=tmp_path), profile=PROFILE)
    assert len(gpu.trt.calls.builds) == 3


# --- ONNX Runtime on the GPU ------------------------------------------------------------------------------------------

ALL = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def test_ort_cuda_binds_host_input_and_device_output_on_its_device(monkeypatch, set5):
    ort = make_onnxruntime(ALL)
    monkeypatch.setitem(sys.modules, "onnxruntime", ort)
    model = get_model("x4-fast")
    engine = OrtGpuEngine(model, EngineOptions(device_id=1))
    assert engine.precision == "fp16" and engine.device == "cuda:1"
    (session,) = ort.calls.sessions
    assert session == {
        "path": str(model.graph("fp16").path),
        "providers": [("CUDAExecutionProvider", {"device_id": "1"})],
    }
    batch = frames(set5, 2, 20, 24)
    out = engine.run(batch)
    assert ort.calls.bindings == [("input", "input", (2, 3, 20, 24)), ("output", "output", "cuda", 1)]
    np.testing.assert_allclose(out, cpu_run(model.graph("fp16").path, batch), atol=1e-6)


def test_ort_tensorrt_profile_names_the_real_input_and_keeps_runs_inside_it(monkeypatch, tmp_path, set5):
    ort = make_onnxruntime(ALL)
    monkeypatch.setitem(sys.modules, "onnxruntime", ort)
    base = get_model("x4-fast")
    symmetric = symmetric_qdq(base.onnx.path, tmp_path / "symmetric.onnx")
    model = replace(base, graphs={**base.graphs, "int8-symmetric": ModelFile(symmetric)})
    options = EngineOptions(precision="int8", device_id=1, cache_dir=tmp_path / "cache")
    engine = OrtGpuEngine(model, options, provider="tensorrt", profile=PROFILE)
    session = ort.calls.sessions[-1]
    assert session["path"] == str(symmetric)
    (trt_name, trt), (cuda_name, cuda) = session["providers"]
    assert (trt_name, cuda_name) == ("TensorrtExecutionProvider", "CUDAExecutionProvider")
    assert cuda == {"device_id": "1"} and trt["device_id"] == "1"  # TensorRT and its fallback on one GPU
    assert trt["trt_int8_enable"] == "True" and trt["trt_fp16_enable"] == "True"
    assert [trt[f"trt_profile_{w}_shapes"] for w in ("min", "opt", "max")] == [
        "input:1x3x16x16", "input:1x3x32x32", "input:2x3x40x48",
    ]  # fmt: skip
    assert Path(trt["trt_engine_cache_path"]).is_dir()
    batch = frames(set5, 3, 50, 60)
    assert np.abs(engine.run(batch) - cpu_run(symmetric, batch)).max() < 1e-5
    assert len(ort.calls.runs) > 1 and all(PROFILE.fits(shape) for shape in ort.calls.runs)

    renamed = renamed_copy(base.onnx.path, tmp_path / "frames.onnx", input_name="frames")
    OrtGpuEngine(replace(base, onnx=ModelFile(renamed)), EngineOptions(precision="fp32"), provider="tensorrt")
    trt = dict(ort.calls.sessions[-1]["providers"])["TensorrtExecutionProvider"]
    assert trt["trt_profile_min_shapes"] == "frames:1x3x1x1" and trt["trt_fp16_enable"] == "False"


def test_ort_gpu_missing_or_fallen_back_providers_are_unavailable(monkeypatch):
    model = get_model("x4-fast")
    monkeypatch.setitem(sys.modules, "onnxruntime", make_onnxruntime(["CPUExecutionProvider"]))
    with pytest.raises(EngineUnavailable, match="no CUDAExecutionProvider"):
        OrtGpuEngine(model)
    with pytest.raises(EngineUnavailable, match="no TensorrtExecutionProvider"):
        OrtGpuEngine(model, provider="tensorrt")
    monkeypatch.setitem(sys.modules, "onnxruntime", make_onnxruntime(ALL, active=["CPUExecutionProvider"]))
    with pytest.raises(EngineUnavailable, match="fell back to CPUExecutionProvider"):
        OrtGpuEngine(model)
