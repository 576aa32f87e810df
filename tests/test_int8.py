"""INT8 on the CPU: the shipped QDQ graphs run, stay within their PSNR bound, and the export refuses worse ones."""

import json

import numpy as np
import onnx
import pytest

from tests.conftest import run_cli
from upscaler import Upscaler
from upscaler.degradations import bicubic, modcrop
from upscaler.metrics import psnr
from upscaler.models import get_model, list_models

#: The bound `upscaler export int8` enforces by default (dB of PSNR lost against FP32).
MAX_COST = 0.15


def _mean_psnr(up: Upscaler, set5) -> float:
    scores = []
    for hr in set5.values():
        hr = modcrop(hr, 4)
        scores.append(psnr(up.upscale(bicubic(hr, 4)), hr, border=4))
    return float(np.mean(scores))


def test_shipped_int8_graph_runs_and_costs_at_most_the_bound_on_set5(set5):
    fp32 = Upscaler("x4-fast", "onnxruntime-cpu", precision="fp32", tile=0)
    int8 = Upscaler("x4-fast", "onnxruntime-cpu", precision="int8", tile=0)
    assert int8.engine.precision == "int8" and fp32.engine.precision == "fp32"
    cost = _mean_psnr(fp32, set5) - _mean_psnr(int8, set5)
    assert -0.05 < cost <= MAX_COST


def test_every_shipped_int8_graph_is_quantised_and_recorded():
    for model in list_models():
        assert "int8" in model.precisions, model.name
        graph = onnx.load(str(model.graph("int8").verified()))
        ops = {node.op_type for node in graph.graph.node}
        assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
        report = model.precision_reports["int8"]
        assert report["speedup"] > 1.0
        assert all(q["psnr_cost"] <= MAX_COST for q in report["quality"].values())


def test_export_int8_writes_a_checked_graph_and_its_report(tmp_path, set5_dir, set5):
    out, report_path = tmp_path / "x2.int8.onnx", tmp_path / "int8.json"
    result = run_cli(
        "export", "int8", "-m", "x2-fast", "--calibration", str(set5_dir), "--crops", "8", "--eval", str(set5_dir),
        "--size", "64x48", "-o", str(out), "--json", str(report_path), "--max-cost", "1.0",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(report_path.read_text())
    assert report["quality"]["set5"]["images"] == 5 and report["calibration"]["crops"] == 8
    assert "INT8" in result.stdout and "x)" in result.stdout
    up = Upscaler(get_model("x2-fast"), engine=_engine_for(out))
    assert up.upscale(set5["head"][:40, :40]).shape == (80, 80, 3)


def test_export_int8_refuses_a_graph_past_the_bound_and_writes_nothing(tmp_path, set5_dir):
    out = tmp_path / "x.onnx"
    result = run_cli(
        "export", "int8", "-m", "x2-fast", "--calibration", str(set5_dir), "--crops", "2", "--eval", str(set5_dir),
        "--size", "32x32", "-o", str(out), "--max-cost", "-1",
    )  # fmt: skip
    assert result.returncode == 2 and "more than --max-cost" in result.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [["--calibration", "/no/such/dir", "-o", "x.onnx"], ["--calibration", "."]])
def test_export_int8_bad_arguments_are_one_line(tmp_path, args):
    result = run_cli("export", "int8", *args, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr


def _engine_for(path):
    from export.int8 import with_graph
    from upscaler.runtime.base import EngineOptions
    from upscaler.runtime.ort_cpu import OrtCpuEngine

    return OrtCpuEngine(with_graph(get_model("x2-fast"), "int8", path), EngineOptions(precision="int8"))
