"""The Triton model repository: layout, config consistent with each graph, graphs that load."""

import re

import numpy as np
import onnxruntime as ort

from tests.conftest import run_cli
from upscaler.models import list_models


def _config(path) -> str:
    return path.read_text()


def test_repository_has_one_loadable_model_per_built_in_model(tmp_path):
    repo = tmp_path / "models"
    result = run_cli("export", "triton", "--dir", str(repo), "--max-batch-size", "4")
    assert result.returncode == 0, result.stderr
    for model in list_models():
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
    assert (repo / "x4-fast" / "1" / "model.onnx").read_bytes() == list_models()[0].graph("int8").path.read_bytes()
    result = run_cli("export", "triton", "--dir", str(tmp_path / "g"), "-m", "x2", "--tensorrt", "fp16")
    assert result.returncode == 0, result.stderr
    text = _config(tmp_path / "g" / "x2-fast" / "config.pbtxt")
    assert 'name: "tensorrt"' in text and 'value: "FP16"' in text


def test_unknown_model_is_one_line(tmp_path):
    result = run_cli("export", "triton", "--dir", str(tmp_path / "r"), "-m", "x9-nothing")
    assert result.returncode == 2 and "unknown model" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "r").exists()
