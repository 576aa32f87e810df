"""``upscaler eval`` (the protocol, against the manifest's numbers) and ``upscaler models``."""

import json

import numpy as np
import pytest

from tests.conftest import run_cli
from upscaler import list_models, write_image


def manifest_quality(model, dataset: str) -> dict:
    by_name = {k.lower(): v for k, v in model.quality.items()}
    return by_name[dataset.lower()]


def test_eval_reproduces_bicubic_and_the_shipped_numbers(set5_dir, tmp_path):
    """On Set5 (bit-identical fixture) eval prints bicubic 28.43 and the manifest's model figure."""
    out_json, out_md = tmp_path / "e.json", tmp_path / "e.md"
    result = run_cli(
        "eval", "--model", "x4-fast", "--data", str(set5_dir), "--json", str(out_json), "--markdown", str(out_md)
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(out_json.read_text())
    (row,) = report["datasets"]
    assert row["bicubic_psnr"] == pytest.approx(28.42, abs=0.02)
    assert len(row["per_image"]) == 5 and report["engine"] == "onnxruntime-cpu"
    model = next(m for m in list_models() if m.name == "x4-fast")
    shipped = manifest_quality(model, "Set5")
    assert row["psnr"] == pytest.approx(shipped["psnr"], abs=0.005)
    assert row["ssim"] == pytest.approx(shipped["ssim"], abs=0.0005)
    assert f"{row['psnr']:.3f}" in result.stdout and "bicubic PSNR" in result.stdout
    assert out_md.read_text().startswith("| model |")


def test_eval_render_protocol_and_several_folders(set5_dir, tmp_path):
    """--degradation render: point-sampled LR at phase 0; bicubic of the same LR alongside (Set5: 23.84)."""
    second = tmp_path / "two"
    second.mkdir()
    for name in ("baby", "bird"):
        (second / f"{name}.webp").write_bytes((set5_dir / f"{name}.webp").read_bytes())
    result = run_cli("eval", "--model", "x4", "--data", str(set5_dir), str(second), "--degradation", "render", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["degradation"] == "render" and [d["images"] for d in report["datasets"]] == [5, 2]
    assert report["datasets"][0]["bicubic_psnr"] == pytest.approx(23.84, abs=0.01)
    table = run_cli("eval", "--model", "x4", "--data", str(second), "--degradation", "render", "--limit", "1")
    assert "render LR" in table.stdout and "bicubic PSNR" in table.stdout


def test_eval_json_to_stdout_and_torch_backend(set5_dir):
    result = run_cli("eval", "--data", str(set5_dir), "--limit", "2", "--json", "--backend", "torch")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["engine"] == "torch-cpu" and report["datasets"][0]["images"] == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "/nonexistent"], "not a folder"),
        (["--data", ".", "--model", "nope"], "unknown model"),
        (["--data", ".", "--json", "/nonexistent/r.json"], "cannot write a report"),
        (["--data", "small"], "too small to evaluate"),
    ],
)
def test_eval_errors(args, message, tmp_path):
    (tmp_path / "small").mkdir()
    write_image(tmp_path / "small" / "tiny.png", np.zeros((12, 12, 3), np.uint8))
    result = run_cli("eval", *args, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_models_table_and_json():
    table = run_cli("models")
    assert table.returncode == 0
    for model in list_models():
        assert model.name in table.stdout
    records = json.loads(run_cli("models", "--json").stdout)
    assert {r["name"] for r in records} == {m.name for m in list_models()}
    assert sum(r["default"] for r in records) == 1
    assert all(r["weights"]["sha256"] and r["onnx"]["sha256"] for r in records)


def test_models_verbose_shows_engines():
    result = run_cli("models", "--verbose")
    assert "engine onnxruntime-cpu: available" in result.stdout
