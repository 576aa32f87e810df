"""ONNX export: dynamic shapes, a plain graph, metadata, and a parity check that fails loudly."""

import json
from dataclasses import replace

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from export.onnx_export import ParityError, check_parity, export_onnx
from export.release import release
from tests.conftest import run_cli
from upscaler import get_model
from upscaler.runtime.torch_engine import TorchEngine

ALLOWED_OPS = {"Conv", "Relu", "PRelu", "DepthToSpace", "Pad", "Add"}


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


def test_cli_fails_loudly_and_keeps_no_graph_above_the_bound(tmp_path, exported):
    out = tmp_path / "strict.onnx"
    result = run_cli("export", "onnx", "-o", str(out), "--tolerance", "1e-12")
    assert result.returncode == 2 and "differs from PyTorch" in result.stderr
    assert list(tmp_path.iterdir()) == []
    # A good graph already at the output path survives a failed export.
    good = exported.read_bytes()
    result = run_cli("export", "onnx", "-o", str(exported), "--tolerance", "1e-12")
    assert result.returncode == 2 and exported.read_bytes() == good


@pytest.mark.parametrize("opset", ["5", "99"])
def test_cli_checks_the_opset(tmp_path, opset):
    result = run_cli("export", "onnx", "-o", str(tmp_path / "m.onnx"), "--opset", opset)
    assert result.returncode == 2 and "opset must be 13 to 20" in result.stderr and result.stdout == ""


def test_cli_refuses_a_directory_as_output(tmp_path):
    result = run_cli("export", "onnx", "-o", str(tmp_path))
    assert result.returncode == 2 and "is a directory" in result.stderr


def test_failed_release_changes_nothing(tmp_path):
    """A release that fails late (a corrupt evaluation image, after export and parity) changes nothing."""
    weights_dir, manifest = tmp_path / "weights", tmp_path / "manifest.json"
    model = get_model("x2-fast")
    ok = release(
        model.weights.path,
        "x2-copy",
        description="copy",
        eval_dirs=[],
        aliases=("video",),
        manifest_path=manifest,
        weights_dir=weights_dir,
    )
    before = {p.name: p.read_bytes() for p in weights_dir.iterdir()}, manifest.read_text()
    with pytest.raises(FileNotFoundError):
        release(
            get_model("x4-fast").weights.path,
            "x2-copy",
            description="bad",
            eval_dirs=[tmp_path / "none"],
            manifest_path=manifest,
            weights_dir=weights_dir,
        )
    assert ({p.name: p.read_bytes() for p in weights_dir.iterdir()}, manifest.read_text()) == before
    assert ok.onnx.verified() and ok.weights.verified() and '"x2-copy"' in manifest.read_text()
    assert json.loads(manifest.read_text())["aliases"] == {"default": "x2-copy", "x2": "x2-copy", "video": "x2-copy"}


def test_a_temporal_release_leaves_no_filter_graph_of_the_release_before(tmp_path):
    """Releasing weights whose display filters are identity over a release that had fitted ones removes the old
    filter graphs: loading the shipped weights by path (which finds graphs beside them) shows what they compute."""
    import torch
    from safetensors.torch import save_file

    from upscaler.archs.accum import AccumSR

    weights_dir, manifest = tmp_path / "weights", tmp_path / "manifest.json"
    for name, filtered in (("filtered", True), ("plain", False)):
        torch.manual_seed(0)
        net = AccumSR(2, channels=8, blocks=1, history_channels=4, display=1)
        with torch.no_grad():
            net.display.weight.add_(torch.randn_like(net.display.weight) * 0.05 * filtered)
        meta = {"name": name, "arch": "accum", "scale": "2", "params": json.dumps(net.inference_params())}
        path = tmp_path / f"{name}.safetensors"
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path), metadata=meta)
        release(path, "x2-tiny", description=name, eval_dirs=[], manifest_path=manifest, weights_dir=weights_dir)
        shipped = sorted(p.name for p in weights_dir.iterdir())
        graphs = ["x2-tiny.display-moving.onnx", "x2-tiny.display-still.onnx", "x2-tiny.display-unjittered.onnx"]
        assert set(graphs) <= set(shipped) if filtered else not set(graphs) & set(shipped)
    assert shipped == ["x2-tiny.folded.onnx", "x2-tiny.onnx", "x2-tiny.safetensors"]


def test_parity_checks_the_graph_given_even_where_the_cpu_would_run_int8(tmp_path, set5, monkeypatch):
    monkeypatch.setenv("UPSCALER_CPU_PRECISION", "int8")  # what auto picks on a CPU where INT8 is faster
    model = get_model("x4-fast")
    report = check_parity(model, model.onnx.path, list(set5.values())[:2])
    assert report.ok and report.max_abs_error < 1e-4  # the FP32 graph, not the INT8 one (about 3e-2 off)


def test_fp16_graph_keeps_float32_io_and_stays_within_its_bound(tmp_path, set5):
    out = tmp_path / "x2-half.onnx"
    result = run_cli("export", "onnx", "--model", "x2-fast", "--fp16", "-o", str(out))
    assert result.returncode == 0, result.stderr
    graph = onnx.load(str(out))
    floats = {i.data_type for i in graph.graph.initializer if i.data_type in (1, 10)}
    assert floats == {onnx.TensorProto.FLOAT16}
    assert graph.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert graph.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert out.stat().st_size < 0.6 * get_model("x2-fast").onnx.path.stat().st_size
    report = check_parity(get_model("x2-fast"), out, list(set5.values()), tolerance=5e-3)
    assert report.psnr > 60


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("name", ["x4-fast", "x4-quality", "x4-render", "x2-fast"])
def test_every_shipped_graph_matches_pytorch_on_real_images(name, precision, set5):
    from export.onnx_export import FP16_TOLERANCE, FP32_TOLERANCE

    model = get_model(name)
    images = [set5["bird"][:96, :128], set5["head"][:64, :64]]
    tolerance = FP16_TOLERANCE if precision == "fp16" else FP32_TOLERANCE
    report = check_parity(model, model.graph(precision).verified(), images, tolerance=tolerance)
    assert report.max_abs_error <= tolerance and report.psnr > 60
