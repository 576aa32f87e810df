"""The Triton model repository: layout, config consistent with each graph, graphs that load.

The ``--plan`` path builds TensorRT plans, which needs TensorRT: it runs here
against the fake TensorRT and CUDA device of ``tests/fakes`` (see
``tests/test_gpu_adapters.py``), which is enough to check that the config
agrees with the profile the plan was built with, not that Triton serves it.
"""

import re
import sys

import numpy as np
import onnxruntime as ort
import pytest

from export.triton import write_repository
from tests.conftest import run_cli
from tests.fakes.cuda import FakeCudaDevice
from tests.fakes.tensorrt import make_tensorrt, plan_header
from upscaler.cli import main
from upscaler.models import get_model, list_models
from upscaler.runtime import tensorrt as trt_adapter
from upscaler.runtime.profiles import parse_profile


def _config(path) -> str:
    return path.read_text()


def test_repository_has_one_loadable_model_per_built_in_model(tmp_path):
    repo = tmp_path / "models"
    result = run_cli("export", "triton", "--dir", str(repo), "--max-batch-size", "4")
    assert result.returncode == 0, result.stderr
    for model in list_models("frame"):
        folder = repo / model.name
        text = _config(folder / "config.pbtxt")
        assert f'name: "{model.name}"' in text and 'platform: "onnxruntime_onnx"' in text
        assert "max_batch_size: 4" in text and "preferred_batch_size: [ 1, 2, 4 ]" in text
        assert "dynamic_batching {" in text and "kind: KIND_GPU" in text
        graph = folder / "1" / "model.onnx"
        assert graph.read_bytes() == model.onnx.path.read_bytes()
        session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
        (inp,), (out,) = session.get_inputs(), session.get_outputs()
        declared = re.findall(r'\{ name: "([^"]+)" data_type: (\w+) dims: \[ 3, -1, -1 \] \}', text)
        assert declared == [(inp.name, "TYPE_FP32"), (out.name, "TYPE_FP32")]
        y = session.run(None, {inp.name: np.zeros((2, 3, 5, 7), np.float32)})[0]
        assert y.shape == (2, 3, 5 * model.scale, 7 * model.scale)  # batch, height and width are dynamic
        assert text.count("{") == text.count("}") and text.count("[") == text.count("]")


def test_cpu_instances_tensorrt_acceleration_and_other_precisions(tmp_path):
    repo = tmp_path / "r"
    result = run_cli("export", "triton", "--dir", str(repo), "-m", "x4", "--cpu", "--precision", "int8")
    assert result.returncode == 0, result.stderr
    text = _config(repo / "x4-fast" / "config.pbtxt")
    assert "kind: KIND_CPU" in text and "tensorrt" not in text.split("\n", 2)[2]
    assert (repo / "x4-fast" / "1" / "model.onnx").read_bytes() == list_models("frame")[0].graph(
        "int8"
    ).path.read_bytes()
    result = run_cli("export", "triton", "--dir", str(tmp_path / "g"), "-m", "x2", "--tensorrt", "fp16")
    assert result.returncode == 0, result.stderr
    text = _config(tmp_path / "g" / "x2-fast" / "config.pbtxt")
    assert 'name: "tensorrt"' in text and 'value: "FP16"' in text


def test_unknown_model_is_one_line(tmp_path):
    result = run_cli("export", "triton", "--dir", str(tmp_path / "r"), "-m", "x9-nothing")
    assert result.returncode == 2 and "unknown model" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "r").exists()


@pytest.fixture
def fake_tensorrt(monkeypatch, tmp_path):
    """A fake TensorRT and CUDA device; the engine cache in ``tmp_path``."""
    device = FakeCudaDevice()
    trt = make_tensorrt(device)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(trt_adapter, "cuda_device", lambda device_id: device)
    monkeypatch.setenv("UPSCALER_CACHE_DIR", str(tmp_path / "cache"))
    return trt


def _plan_config(folder):
    """The config's max_batch_size and preferred sizes, and the (min, opt, max) profile of the plan beside it."""
    text = _config(folder / "config.pbtxt")
    assert 'platform: "tensorrt_plan"' in text and "kind: KIND_GPU" in text
    max_batch = int(re.search(r"^max_batch_size: (\d+)$", text, re.M)[1])
    preferred = [int(b) for b in re.search(r"preferred_batch_size: \[ ([\d, ]+) \]", text)[1].split(", ")]
    (profile,) = plan_header((folder / "1" / "model.plan").read_bytes())["profile"].values()
    return max_batch, preferred, profile


def test_plan_repository_batches_stay_within_the_plans_profile(tmp_path, fake_tensorrt, capsys):
    repo = tmp_path / "plans"
    assert main(["export", "triton", "--dir", str(repo), "-m", "x4-fast", "--plan"]) == 0, capsys.readouterr().err
    max_batch, preferred, (lo, _, hi) = _plan_config(repo / "x4-fast")
    # Triton refuses a plan whose profile cannot take max_batch_size; the defaults must agree
    assert max_batch == hi[0] == 4 and lo[0] == 1
    assert preferred == [1, 2, 4] and all(lo[0] <= b <= max_batch for b in preferred)
    assert fake_tensorrt.Runtime(fake_tensorrt.Logger()).deserialize_cuda_engine(
        (repo / "x4-fast/1/model.plan").read_bytes()
    )

    smaller = tmp_path / "smaller"
    argv = ["export", "triton", "--dir", str(smaller), "-m", "x4-fast", "--plan", "--max-batch-size", "3",
            "--profile", "1x1x1:2x64x64:6x256x256"]  # fmt: skip
    assert main(argv) == 0
    max_batch, preferred, (_, _, hi) = _plan_config(smaller / "x4-fast")
    assert (max_batch, preferred, hi[0]) == (3, [1, 2], 6)

    builds = len(fake_tensorrt.calls.builds)
    refused = tmp_path / "refused"
    assert main(["export", "triton", "--dir", str(refused), "-m", "x4-fast", "--plan", "--max-batch-size", "8"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "max batch size 8" in err and "max batch of 4" in err
    assert not refused.exists() and len(fake_tensorrt.calls.builds) == builds  # refused before building
    argv = ["export", "triton", "--dir", str(refused), "-m", "x4-fast", "--plan", "--profile", "2x8x8:2x64x64:4x64x64"]
    assert main(argv) == 2 and "min batch is 2" in capsys.readouterr().err


def test_write_repository_checks_plans_against_their_profile(tmp_path):
    model = get_model("x4-fast")
    plan = tmp_path / "x4.plan"
    plan.write_bytes(b"plan" * 32)
    profile = parse_profile("1x1x1:1x64x64:2x128x128")
    (config,) = write_repository([model], tmp_path / "a", plans={model.name: plan}, profile=profile)
    assert "max_batch_size: 2\n" in config.read_text() and "preferred_batch_size: [ 1, 2 ]" in config.read_text()
    with pytest.raises(ValueError, match="more than the TensorRT profile's max batch of 2"):
        write_repository([model], tmp_path / "b", plans={model.name: plan}, profile=profile, max_batch_size=4)
    with pytest.raises(ValueError, match="profile they were built with"):
        write_repository([model], tmp_path / "c", plans={model.name: plan})
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()
    (config,) = write_repository([model], tmp_path / "d")  # ONNX: any batch, 8 by default
    assert "max_batch_size: 8\n" in config.read_text()


def test_temporal_models_are_stateful_sequence_models_whose_first_request_needs_no_state(tmp_path):
    """Triton's implicit state: the output is fed back as ``history``; the start flag drives ``reset``.

    The first request of a sequence carries an uninitialised 1 x 1 state
    (Triton's rule for variable-sized state); the graph must ignore it. This
    plays Triton's part with ONNX Runtime on the shipped graph.
    """
    from upscaler.io import sample_images
    from upscaler.runtime.stream import start_state
    from upscaler.sequences import Camera, SequenceSpec, make_sequence

    repo = tmp_path / "models"
    result = run_cli("export", "triton", "--dir", str(repo), "-m", "x4-temporal", "--max-batch-size", "4")
    assert result.returncode == 0, result.stderr
    text = _config(repo / "x4-temporal" / "config.pbtxt")
    model = get_model("x4-temporal")
    graph = repo / "x4-temporal" / "1" / "model.onnx"
    assert graph.read_bytes() == model.onnx.path.read_bytes()
    assert "max_batch_size: 1" in text and "sequence_batching {" in text and "dynamic_batching" not in text
    assert re.search(r'control_input \[\s*\{ name: "reset" control \[ \{ kind: CONTROL_SEQUENCE_START '
                     r"fp32_false_true: \[ 0, 1 \] \} \] \}", text)  # fmt: skip
    c = model.state_channels  # the frame's 3 planes, then what else the model carries
    assert f'input_name: "history" output_name: "output" data_type: TYPE_FP32 dims: [ {c}, -1, -1 ]' in text
    declared = re.findall(r'\{ name: "(\w+)" data_type: (\w+) dims: \[ ([^\]]+) \] \}', text)
    depth = [("depth", "TYPE_FP32", "1, -1, -1")] if model.depth else []
    output = [("output", "TYPE_FP32", f"{c}, -1, -1")]
    assert declared == [("frame", "TYPE_FP32", "3, -1, -1"), ("jitter", "TYPE_FP32", "2"),
                        ("motion", "TYPE_FP32", "2, -1, -1"), *depth, *output]  # fmt: skip
    assert text.count("{") == text.count("}") and text.count("[") == text.count("]")

    scene = sample_images()[0]
    camera = Camera(center=(scene.shape[1] / 2, scene.shape[0] / 2), velocity=(2.0, 1.0))
    frames = make_sequence(scene, SequenceSpec(4, (28, 20), 4, camera))
    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    state = np.full((1, c, 1, 1), np.nan, np.float32)  # Triton: uninitialised, variable dims as 1
    reference = None
    for t, f in enumerate(frames):
        x = np.ascontiguousarray(f.lr.transpose(2, 0, 1)[None], np.float32) / 255
        jitter = np.array([f.jitter], np.float32)
        motion = np.ascontiguousarray(f.motion.transpose(2, 0, 1)[None])
        start = np.array([[1.0 if t == 0 else 0.0]], np.float32)
        extra = {"depth": np.zeros((1, 1, *x.shape[2:]), np.float32)} if model.depth else {}
        feeds = {"frame": x, "jitter": jitter, "motion": motion, "history": state, "reset": start, **extra}
        state = session.run(None, feeds)[0]
        if reference is None:  # what our own engines do on a reset: the frame upsampled, no motion
            feeds = {"frame": x, "jitter": jitter, "motion": np.zeros_like(motion), "reset": start,
                     "history": start_state(x, 4, c)[None], **extra}  # fmt: skip
        else:
            feeds = {"frame": x, "jitter": jitter, "motion": motion, "reset": start, "history": reference, **extra}
        reference = session.run(None, feeds)[0]
        assert np.isfinite(state).all()
        np.testing.assert_allclose(state, reference, atol=1e-6)


def test_temporal_plans_are_built_at_batch_one(fake_tensorrt, tmp_path):
    repo = tmp_path / "r"
    code = main(["export", "triton", "--dir", str(repo), "-m", "x2-temporal", "--plan", "--profile",
                 "1x8x8:2x32x32:4x64x64"])  # fmt: skip
    assert code == 0
    text = _config(repo / "x2-temporal" / "config.pbtxt")
    assert 'platform: "tensorrt_plan"' in text and "max_batch_size: 1" in text
    assert "frames from 8x8 to 64x64, tuned for 32x32" in text
    profile = plan_header((repo / "x2-temporal" / "1" / "model.plan").read_bytes())["profile"]
    assert profile["frame"] == ((1, 3, 8, 8), (1, 3, 32, 32), (1, 3, 64, 64))
    c = get_model("x2-temporal").state_channels  # colour, samples gathered, depth
    assert profile["history"] == ((1, c, 1, 1), (1, c, 64, 64), (1, c, 128, 128))
