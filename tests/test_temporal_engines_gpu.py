"""The GPU temporal engines (TensorRT, ONNX Runtime CUDA), run against fakes of the library calls they make.

As in ``test_gpu_adapters.py``: TensorRT, onnxruntime-gpu and a CUDA device
cannot be had here, so ``tests/fakes`` stands in for them, checking names,
signatures and call order, and computing with ONNX Runtime's CPU engine. The
values are compared with the whole-step graph run on the CPU with the
history carried on the host, so what is tested is the adapters' use of the
APIs (profiles over five inputs, the history kept on the device, resets),
never TensorRT's or CUDA's numerics or speed.
"""

from __future__ import annotations

import sys

import numpy as np
import onnxruntime as real_ort
import pytest

from tests.fakes import install_fake_tensorrt
from tests.fakes.onnxruntime_gpu import make_onnxruntime
from tests.fakes.tensorrt import plan_header
from upscaler import TemporalUpscaler
from upscaler.io import sample_images
from upscaler.models import get_model
from upscaler.runtime import select
from upscaler.runtime.base import EngineOptions
from upscaler.runtime.profiles import parse_profile, temporal_shapes
from upscaler.runtime.stream import start_state
from upscaler.runtime.temporal_ort_cuda import OrtCudaTemporalEngine
from upscaler.runtime.temporal_tensorrt import TensorRTTemporalEngine
from upscaler.sequences import Camera, SequenceSpec, make_sequence

PROFILE = parse_profile("1x8x8:1x24x32:1x40x48")


@pytest.fixture(scope="module")
def sequence():
    scene = sample_images()[0]
    camera = Camera(center=(scene.shape[1] / 2, scene.shape[0] / 2), velocity=(2.4, 1.2))
    return make_sequence(scene, SequenceSpec(4, (32, 24), 6, camera))


def inputs(frame):
    x = np.ascontiguousarray(frame.lr.transpose(2, 0, 1)[None], np.float32) / 255
    return x, np.array([frame.jitter], np.float32), np.ascontiguousarray(frame.motion.transpose(2, 0, 1)[None])


def cpu_reference(model, frames, resets):
    """The whole-step graph on ONNX Runtime's CPU engine, history carried on the host."""
    session = real_ort.InferenceSession(str(model.onnx.path), providers=["CPUExecutionProvider"])
    history, outs = None, []
    for frame, reset in zip(frames, resets):
        x, jitter, motion = inputs(frame)
        if reset or history is None:
            history, motion = start_state(x, model.scale, model.state_channels)[None], np.zeros_like(motion)
        feeds = {"frame": x, "jitter": jitter, "motion": motion, "history": history,
                 "reset": np.array([[1.0 if reset else 0.0]], np.float32)}  # fmt: skip
        if model.depth:
            feeds["depth"] = np.zeros((1, 1, *x.shape[2:]), np.float32)
        history = session.run(None, feeds)[0]
        outs.append(history[:, :3])  # the frame; the state's other planes stay in history
    return outs


@pytest.fixture
def gpu(monkeypatch):
    return install_fake_tensorrt(monkeypatch)


def test_tensorrt_temporal_builds_one_profile_over_the_five_inputs_and_keeps_the_history_on_the_device(
    gpu, tmp_path, sequence
):
    model = get_model("x4-temporal")
    engine = TensorRTTemporalEngine(model, EngineOptions(precision="fp16", cache_dir=tmp_path), profile=PROFILE)
    calls = gpu.trt.calls
    assert calls.parsed == [model.onnx.path.read_bytes()]  # the whole-step graph
    (build,) = calls.builds
    assert build["flags"] == ["FP16", "OBEY_PRECISION_CONSTRAINTS"] and build["fp16_grids"] == []
    assert build["profile"] == temporal_shapes(PROFILE, 4, model.state_channels, model.depth)
    assert build["profile"]["history"][0] == (1, model.state_channels, 1, 1)  # a server's placeholder state fits
    assert plan_header(engine.plan_path.read_bytes())["profile"] == build["profile"]
    assert engine.profile == PROFILE

    resets = [True, False, False, True, False, False]  # a reset mid-sequence too
    outs = [engine.step(*inputs(f), reset=r) for f, r in zip(sequence, resets)]
    for got, want in zip(outs, cpu_reference(model, sequence, resets)):
        np.testing.assert_allclose(got, want, atol=1e-5)

    # only low-resolution inputs go up and one output comes down per step: the history stays on the device
    assert all(shape[-2:] in ((24, 32), (1, 2), (1, 1)) or len(shape) == 2 for shape in gpu.device.uploads)
    assert gpu.device.downloads == [(1, 3, 96, 128)] * len(sequence)
    per_step = len(temporal_shapes(PROFILE, 4, model.state_channels, model.depth)) + 1  # inputs and the output
    bound = [dict(calls.addresses[i : i + per_step]) for i in range(0, len(calls.addresses), per_step)]
    for t in (1, 2, 4, 5):  # each continuing step reads as history the buffer the step before wrote
        assert bound[t]["history"] == bound[t - 1]["output"]
    assert bound[3]["history"] != bound[2]["output"]  # the reset read a fresh buffer instead
    assert bound[4]["output"] == bound[3]["history"]  # which the next step wrote: two buffers, swapped

    # after a reset the history buffer is never written (the fake device fills it with NaN); the graph ignores it
    out = engine.step(*inputs(sequence[0]), reset=True)
    placeholder = gpu.device.lookup(dict(calls.addresses[-6:])["history"])
    assert np.isnan(placeholder).all() and np.isfinite(out).all()
    np.testing.assert_allclose(out, outs[0], atol=1e-6)

    # a second engine for the same model, precision and profile loads the cached plan
    TensorRTTemporalEngine(model, EngineOptions(precision="fp16", cache_dir=tmp_path), profile=PROFILE)
    assert len(calls.builds) == 1


def test_tensorrt_temporal_refuses_frames_outside_its_profile_and_goes_on(gpu, tmp_path, sequence):
    model = get_model("x4-temporal")
    engine = TensorRTTemporalEngine(model, EngineOptions(cache_dir=tmp_path), profile=PROFILE)
    ts = TemporalUpscaler(model, engine=engine)
    first = ts.upscale(sequence[0].lr, sequence[0].jitter, sequence[0].motion)
    with pytest.raises(ValueError, match="outside this TensorRT engine's profile"):
        ts.engine.step(np.zeros((1, 3, 64, 64), np.float32), np.zeros((1, 2), np.float32),
                       np.zeros((1, 2, 64, 64), np.float32), reset=False)  # fmt: skip
    second = ts.upscale(sequence[1].lr, sequence[1].jitter, sequence[1].motion)
    want = cpu_reference(model, sequence[:2], [True, False])
    assert first.shape == second.shape == (96, 128, 3)
    assert np.abs(second.astype(int) - np.rint(want[1][0].transpose(1, 2, 0) * 255).astype(int)).max() <= 1
    with pytest.raises(ValueError, match="max batch must be 1"):
        TensorRTTemporalEngine(model, EngineOptions(cache_dir=tmp_path), profile=parse_profile("1x8x8:1x8x8:2x8x8"))


def test_the_gpu_backend_picks_tensorrt_for_temporal_models_when_it_loads(gpu, tmp_path, monkeypatch, sequence):
    monkeypatch.setenv("UPSCALER_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(select, "nvidia_driver", lambda: "550.54")  # the registry asks for a driver first
    ts = TemporalUpscaler("x2-temporal", backend="gpu")
    assert ts.engine.name == "tensorrt" and ts.engine.precision == "fp16"
    planes = get_model("x2-temporal").state_channels
    assert gpu.trt.calls.builds[0]["profile"]["history"][2] == (1, planes, 2160, 3840)  # 1080p in, 4K out


def test_onnxruntime_cuda_temporal_binds_the_previous_output_as_history(monkeypatch, sequence):
    ort = make_onnxruntime(["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setitem(sys.modules, "onnxruntime", ort)
    monkeypatch.setattr(select, "nvidia_driver", lambda: "550.54")
    model = get_model("x4-temporal")
    engine = OrtCudaTemporalEngine(model, EngineOptions(device_id=1))
    (session,) = ort.calls.sessions
    assert session["path"] == str(model.onnx.path)
    assert session["providers"] == [("CUDAExecutionProvider", {"device_id": "1"})]

    resets = [True, False, False, False]
    outs = [engine.step(*inputs(f), reset=r) for f, r in zip(sequence, resets)]
    for got, want in zip(outs, cpu_reference(model, sequence, resets)):
        np.testing.assert_allclose(got, want, atol=1e-5)
    history = [b for b in ort.calls.bindings if b[1] == "history"]
    c = model.state_channels
    assert history[0] == ("input", "history", (1, c, 96, 128))  # the first frame: the frame upsampled
    assert history[1:] == [("ortvalue", "history", (1, c, 96, 128))] * 3  # then the state, never via the host
    assert ("output", "output", "cuda", 1) in ort.calls.bindings


def test_tensorrt_fp16_keeps_the_reprojection_grid_in_fp32(gpu, tmp_path, monkeypatch):
    """FP16 grid positions are 2^-11 apart near the edges of [-1, 1]: at 2560 px output a history
    reprojected through them lands up to 0.6 px off. The adapter pins the layers computing the grid to FP32
    (and sets OBEY_PRECISION_CONSTRAINTS); the fake rounds any grid left to FP16, so without the pins the
    output differs from the FP32 reference, and with them it does not."""
    from upscaler.runtime import tensorrt as trt_runtime

    scene = sample_images()[0]
    camera = Camera(center=(scene.shape[1] / 2, scene.shape[0] / 2), velocity=(1.3, 0.6))
    frames = make_sequence(scene, SequenceSpec(4, (640, 16), 3, camera), supersamples=1)
    wide = parse_profile("1x8x8:1x16x640:1x16x640")
    model = get_model("x4-temporal")
    want = cpu_reference(model, frames, [True, False, False])

    def last_output(cache: str) -> np.ndarray:
        engine = TensorRTTemporalEngine(
            model, EngineOptions(precision="fp16", cache_dir=tmp_path / cache), profile=wide
        )
        return [engine.step(*inputs(f), reset=t == 0) for t, f in enumerate(frames)][-1]

    pinned = last_output("pinned")
    assert gpu.trt.calls.builds[-1]["fp16_grids"] == []
    np.testing.assert_allclose(pinned, want[-1], atol=1e-5)
    monkeypatch.setattr(trt_runtime, "keep_grids_fp32", lambda trt, network: 0)  # the adapter as it was
    loose = last_output("loose")
    assert (
        gpu.trt.calls.builds[-1]["fp16_grids"] and "OBEY_PRECISION_CONSTRAINTS" not in gpu.trt.calls.builds[-1]["flags"]
    )
    assert np.abs(loose - want[-1]).max() > 4 / 255  # the history lands in the wrong place
