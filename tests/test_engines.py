"""Engines and the fallback chain: ONNX Runtime and PyTorch agree; skips are logged."""

import contextlib
import logging
import sys
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from tests.conftest import run_cli
from upscaler import Upscaler, default_model, pipeline, read_image
from upscaler.facade import DEFAULT_TILE, GPU_TILE, default_tile
from upscaler.io import write_image
from upscaler.runtime import Engine, EngineUnavailable, create_engine, probe_engines
from upscaler.sysinfo import nvidia_driver

# Makes 'import torch' (and safetensors) fail in a subprocess, as on a machine without them.
NO_TORCH = """
import importlib.abc, sys
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "safetensors"):
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, _Block())
"""


@pytest.fixture()
def no_torch_env(tmp_path):
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(NO_TORCH)
    return {"PYTHONPATH": str(shim)}


def test_both_engines_implement_the_protocol():
    for backend in ("onnxruntime-cpu", "torch-cpu"):
        engine = create_engine(default_model(), backend)
        assert isinstance(engine, Engine)
        assert engine.scale == 4 and engine.device == "cpu" and engine.precision == "fp32"
        out = engine.run(np.random.default_rng(0).random((2, 3, 8, 9), dtype=np.float32))
        assert out.shape == (2, 3, 32, 36) and out.dtype == np.float32


def test_engines_agree_on_a_real_photo(set5):
    image = set5["woman"]
    ort = Upscaler(backend="onnxruntime").upscale(image)
    torch_out = Upscaler(backend="torch").upscale(image)
    assert np.abs(ort.astype(int) - torch_out).max() <= 1


def _float_path(engine, frames: np.ndarray, multiple: int = 1) -> np.ndarray:
    """What ``run_rgb8`` must equal: the float planes through the engine, finished on the host."""
    batch, h, w = pipeline.pad_batch(pipeline.color_batch(list(frames)), multiple)
    out = engine.run(batch)[:, :, : h * engine.scale, : w * engine.scale]
    return np.stack([pipeline.planes_to_image(o, np.uint8) for o in out])


@pytest.mark.parametrize("multiple", [1, 4])
def test_torch_takes_8_bit_frames_and_gives_the_float_paths_result_exactly(set5, multiple):
    engine = create_engine(default_model(), "torch-cpu")
    frames = np.stack([set5["woman"][:37, :45], set5["bird"][:37, :45]])  # 37x45: padded when multiple is 4
    got = engine.run_rgb8(frames, multiple)
    assert got.dtype == np.uint8 and got.shape == (2, 148, 180, 3) and got.flags.c_contiguous
    np.testing.assert_array_equal(got, _float_path(engine, frames, multiple))
    with pytest.raises(ValueError, match="uint8 frames"):
        engine.run_rgb8(frames.astype(np.float32))
    with pytest.raises(ValueError, match="uint8 frames"):
        engine.run_rgb8(frames[..., :2])


def test_the_gpu_engines_8_bit_layout_channels_last_and_padded_runs_on_the_cpu_too(set5):
    # TorchCudaEngine.run_rgb8 is _rgb8_call with channels-last tensors; no GPU here, so run that on the CPU
    import torch

    from upscaler.runtime.torch_engine import _rgb8_call

    engine = create_engine(default_model(), "torch-cpu")
    frames = np.stack([set5["baby"][:37, :45]])
    seen = []

    def network(x):
        seen.append((tuple(x.shape), x.is_contiguous(memory_format=torch.channels_last)))
        return engine._net(x)

    got = _rgb8_call(engine, frames, 4, lambda t: t.clone(), network, torch.float32, channels_last=True)
    assert seen == [((1, 3, 40, 48), True)] and got.shape == (1, 148, 180, 3)
    assert np.abs(got.astype(int) - _float_path(engine, frames, 4)).max() <= 1


def test_upscaler_sends_8_bit_frames_whole_where_the_engine_takes_them(set5):
    up = Upscaler(backend="torch", tile=0)
    assert up.rgb8 and not Upscaler(backend="onnxruntime").rgb8
    image = set5["butterfly"]
    np.testing.assert_array_equal(up.upscale(image), _float_path(up.engine, image[None])[0])
    both = up.upscale_batch([image, image[::-1].copy()])
    np.testing.assert_array_equal(both[1], _float_path(up.engine, image[::-1][None])[0])
    deep = up.upscale(image.astype(np.uint16) * 257)  # 16-bit frames take the float path and stay 16-bit
    assert deep.dtype == np.uint16 and np.abs((deep // 257).astype(int) - both[0]).max() <= 1


def test_gpu_engines_run_frames_up_to_1080p_whole_by_default():
    assert default_tile(SimpleNamespace(device="cuda:1")) == GPU_TILE >= 1920
    assert default_tile(SimpleNamespace(device="cpu")) == DEFAULT_TILE
    assert Upscaler(backend="onnxruntime").tile == DEFAULT_TILE and Upscaler(backend="torch", tile=64).tile == 64


def test_engine_rejects_malformed_batches():
    engine = create_engine(default_model(), "onnxruntime")
    with pytest.raises(ValueError, match="N x 3"):
        engine.run(np.zeros((3, 8, 8), np.float32))
    with pytest.raises(ValueError, match="N x 3"):
        engine.run(np.zeros((1, 4, 8, 8), np.float32))


GPU_ENGINES = ("tensorrt", "onnxruntime-tensorrt", "onnxruntime-cuda", "torch-cuda")
no_gpu = pytest.mark.skipif(nvidia_driver() is not None, reason="this machine has an NVIDIA driver")


@no_gpu
def test_without_a_gpu_auto_picks_onnxruntime_cpu_and_says_why_each_gpu_engine_was_skipped(caplog):
    with caplog.at_level(logging.INFO, logger="upscaler.runtime"):
        engine = create_engine(default_model(), "auto")
    assert engine.name == "onnxruntime-cpu" and engine.precision == "fp32"
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert skipped == [f"engine {name} skipped: no NVIDIA GPU driver on this machine" for name in GPU_ENGINES]


def test_auto_falls_back_and_logs_why(caplog):
    no_onnx = replace(default_model(), onnx=None)
    with caplog.at_level(logging.INFO, logger="upscaler.runtime"):
        engine = create_engine(no_onnx, "cpu")
    assert engine.name == "torch-cpu"
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert skipped == [
        f"engine onnxruntime-cpu skipped: model '{no_onnx.name}' has no ONNX graph "
        "(export one with 'upscaler export onnx')"
    ]


@pytest.mark.parametrize("failure", [RuntimeError("CUDA error: out of memory"), OSError(30, "Read-only file system")])
def test_any_engine_failure_moves_the_chain_on_and_says_why(monkeypatch, caplog, failure):
    from upscaler.runtime import select

    def broken(model, options):
        raise failure

    monkeypatch.setitem(select.ENGINES, "onnxruntime-cpu", select.EngineSpec(broken, broken))
    with caplog.at_level(logging.INFO, logger="upscaler.runtime"):
        engine = create_engine(default_model(), "cpu")
    assert engine.name == "torch-cpu"
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert skipped == [f"engine onnxruntime-cpu skipped: failed to start ({type(failure).__name__}: {failure})"]
    with pytest.raises(EngineUnavailable, match=type(failure).__name__):  # alone, it is refused with its reason
        create_engine(default_model(), "onnxruntime-cpu")
    choices = {c.engine: c for c in probe_engines(default_model())}
    assert not choices["onnxruntime-cpu"].available and type(failure).__name__ in choices["onnxruntime-cpu"].reason


def test_a_precision_no_engine_runs_is_refused_with_each_reason():
    with pytest.raises(EngineUnavailable) as info:
        create_engine(default_model(), "cpu", precision="fp16")
    assert "onnxruntime-cpu does not run fp16 (it runs fp32, int8)" in str(info.value)
    assert "torch-cpu does not run fp16 (it runs fp32)" in str(info.value)
    with pytest.raises(ValueError, match="precision must be one of"):
        create_engine(default_model(), "cpu", precision="fp8")


def test_no_engine_at_all_lists_every_reason():
    bare = replace(default_model(), onnx=None, weights=None)
    with pytest.raises(EngineUnavailable) as info:
        create_engine(bare, "auto")
    assert all(f"{name}: " in str(info.value) for name in (*GPU_ENGINES, "onnxruntime-cpu", "torch-cpu"))
    with pytest.raises(EngineUnavailable, match="no ONNX graph"):
        create_engine(bare, "onnxruntime")


def test_probe_reports_each_engine():
    choices = {c.engine: c for c in probe_engines(default_model())}
    assert list(choices) == [*GPU_ENGINES, "onnxruntime-cpu", "torch-cpu"]
    assert choices["onnxruntime-cpu"].available and choices["torch-cpu"].available
    missing = {c.engine: c for c in probe_engines(replace(default_model(), weights=None))}
    assert not missing["torch-cpu"].available and "safetensors" in missing["torch-cpu"].reason


def test_threads_must_be_positive():
    with pytest.raises(ValueError):
        create_engine(default_model(), "onnxruntime", threads=0)


def test_onnxruntime_path_never_imports_torch(tmp_path, no_torch_env, photo):
    """The CPU inference path works on a machine without torch."""
    src = write_image(tmp_path / "in.png", photo)
    result = run_cli("upscale", str(src), "-o", str(tmp_path / "out.png"), env=no_torch_env)
    assert result.returncode == 0, result.stderr
    assert read_image(tmp_path / "out.png").shape == (1024, 1024, 3)
    # ...and the torch backend then says plainly what is missing.
    result = run_cli("upscale", str(src), "-o", str(tmp_path / "t.png"), "--backend", "torch", env=no_torch_env)
    assert result.returncode == 2 and "torch is not installed" in result.stderr
    assert result.stderr.count("\n") == 1 and not (tmp_path / "t.png").exists()


def test_importing_the_core_stays_light():
    import subprocess

    code = (
        "import sys, upscaler; upscaler.Upscaler().upscale(__import__('numpy').zeros((8, 8, 3), 'uint8')); "
        "print(sorted(m for m in ('torch', 'onnx', 'training', 'export', 'server') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_ort_threads_may_sleep_between_calls_with_the_same_result(photo):
    frame = photo[:24, :40]
    calm = Upscaler("x2", "onnxruntime", spin=False)
    assert np.array_equal(calm.upscale(frame), Upscaler("x2", "onnxruntime").upscale(frame))


def test_info_lists_the_machine_and_every_engine_with_its_reason():
    import json

    result = run_cli("info", "-m", "x4-fast", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["machine"]["cores"] >= 1 and report["libraries"]["onnxruntime"]
    choices = report["models"]["x4-fast"]
    assert [c["engine"] for c in choices] == [*GPU_ENGINES, "onnxruntime-cpu", "torch-cpu"]
    assert all(c["available"] or c["reason"] for c in choices)
    cpu = next(c for c in choices if c["engine"] == "onnxruntime-cpu")
    assert cpu["available"] and cpu["precision"] == "fp32"
    text = run_cli("info", "-m", "x4-fast", "--precision", "int8").stdout
    assert "onnxruntime-cpu       available (int8: requested)" in text and "torch-cpu does not run int8" in text


def test_a_chain_passes_over_an_engine_that_would_drop_the_still_camera_hold(monkeypatch, caplog):
    """TensorRT and ONNX Runtime's CUDA provider run the whole step as one graph, which has no input for the
    hold: ``auto`` and ``gpu`` skip them for a model with one (x4-temporal) and not for one without
    (x2-temporal); named alone, such an engine runs the model and says what it leaves out."""
    from upscaler.models import get_model
    from upscaler.runtime import select

    def skipped(model, backend):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="upscaler.runtime"), contextlib.suppress(EngineUnavailable):
            create_engine(model, backend)
        return {r.getMessage().split()[1]: r.getMessage() for r in caplog.records if "skipped" in r.getMessage()}

    held, unheld = get_model("x4-temporal"), get_model("x2-temporal")
    assert held.params.get("hold") and not unheld.params.get("hold")
    for name in ("tensorrt", "onnxruntime-cuda"):
        assert skipped(held, "gpu")[name] == f"engine {name} skipped: {select.HOLD_REASON}"
        assert "hold" not in skipped(unheld, "gpu").get(name, "")
    cpu = select.ENGINES["torch-cpu"]  # a graph engine that loads here: the CPU engine under its flag
    monkeypatch.setitem(select.ENGINES, "onnxruntime-cuda", select.EngineSpec(None, cpu.temporal, holds=False))
    monkeypatch.setitem(select.BACKENDS, "gpu", ("onnxruntime-cuda", "torch-cpu"))
    assert create_engine(held, "gpu").name == "torch-cpu"
    assert create_engine(unheld, "gpu") is not None and "onnxruntime-cuda" not in skipped(unheld, "gpu")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="upscaler.runtime"):
        create_engine(held, "onnxruntime-cuda")
    assert [r.getMessage() for r in caplog.records] == [
        "engine onnxruntime-cuda runs x4-temporal without its still-camera hold (runtime.hold)"
    ]
    choices = {c.engine: c for c in probe_engines(held)}  # what ``upscaler info`` shows: as ``auto`` treats it
    assert not choices["onnxruntime-cuda"].available and choices["onnxruntime-cuda"].reason == select.HOLD_REASON
    assert choices["torch-cpu"].available
