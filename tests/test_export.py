"""ONNX export: dynamic shapes, a plain graph, metadata, and a parity check that fails loudly."""

from dataclasses import replace

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from export.onnx_export import ParityError, check_parity, export_onnx
from tests.conftest import run_cli
from upscaler import get_model
from upscaler.runtime.torch_engine import TorchEngine

ALLOWED_OPS = {"Conv", "Relu", "PRelu", "DepthToSpace", "Resize", "Add", "Constant"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "x4.onnx"
    result = run_cli("export", "onnx", "--model", "x4-fast", "-o", str(path))
    assert result.returncode == 0, result.stderr
    assert "max abs error" in result.stdout
    return path


def test_graph_is_plain_with_dynamic_batch_height_width(exported):
    graph = onnx.load(str(exported))
    assert {n.op_type for n in graph.graph.node} <= ALLOWED_OPS
    dims = [d.dim_param for d in graph.graph.input[0].type.tensor_type.shape.dim]
    assert dims[0] == "batch" and dims[2:] == ["height", "width"]
    assert graph.opset_import[0].version == 17
    props = {p.key: p.value for p in graph.metadata_props}
    assert props["name"] == "x4-fast" and props["scale"] == "4"


@pytest.mark.parametrize("shape", [(1, 3, 1, 1), (1, 3, 17, 23), (3, 3, 40, 31)])
def test_runs_at_any_shape_and_matches_pytorch(exported, shape):
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    (y,) = session.run(None, {"input": x})
    assert y.shape == (shape[0], 3, shape[2] * 4, shape[3] * 4)
    np.testing.assert_allclose(y, TorchEngine(get_model("x4-fast")).run(x), atol=1e-4)


def test_parity_check_catches_a_wrong_graph(exported, tmp_path, photo):
    model = get_model("x4-fast")
    report = check_parity(model, exported, [photo])
    assert report.ok and report.max_abs_error < 1e-3 and report.psnr > 60
    other = replace(get_model("x2-fast"), onnx=None)
    wrong = export_onnx(other, tmp_path / "other.onnx")
    with pytest.raises(ParityError):
        check_parity(model, wrong, [photo])


def test_cli_fails_loudly_and_keeps_no_graph_above_the_bound(tmp_path):
    out = tmp_path / "strict.onnx"
    result = run_cli("export", "onnx", "-o", str(out), "--tolerance", "1e-12")
    assert result.returncode == 2 and "differs from PyTorch" in result.stderr
    assert not out.exists()


def test_cli_refuses_a_directory_as_output(tmp_path):
    result = run_cli("export", "onnx", "-o", str(tmp_path))
    assert result.returncode == 2 and "is a directory" in result.stderr
