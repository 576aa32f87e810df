"""The GPU session script and its report, on the CPU: the next lent GPU must not find them broken.

``benchmarks/gpu_session.py --smoke`` runs the same stages with the CPU in
the GPU's place (tiny sizes); the committed tables must be what
``gpu_report.py`` makes from the committed JSON (one source for each figure).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import REPO

RESULTS = REPO / "benchmarks" / "results"


def test_the_committed_gpu_tables_are_made_from_the_committed_json(tmp_path):
    out = tmp_path / "gpu.md"
    subprocess.run([sys.executable, "benchmarks/gpu_report.py", str(RESULTS / "gpu-h200-session.json"), "--extra",
                    str(RESULTS / "gpu-h200-tune.json"), "--markdown", str(out)], cwd=REPO, check=True)  # fmt: skip
    assert out.read_text() == (RESULTS / "gpu-h200.md").read_text()
    session = json.loads((RESULTS / "gpu-h200-session.json").read_text())
    assert session["env"]["device"] == "NVIDIA H200" and session["pytest"]["rc"] == 0
    quality = [r for r in session["speed"] if r["model"] == "x4-quality" and r["precision"] == "fp16"
               and r["cuda_graph"] and r["input"] == "960x540" and r["batch"] == 1]  # fmt: skip
    assert (
        "| x4-quality, 960x540 -> 3840x2160, FP16 | {:.2f} ms".format(quality[0]["p50_ms"])
        in (REPO / "README.md").read_text()
    )


def test_the_session_script_runs_its_stages_without_a_gpu(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "benchmarks/gpu_session.py", "--out", str(tmp_path), "--smoke", "--budget-s", "60",
           "--only", "parity", "speed", "temporal_speed", "cpu_peer"]  # fmt: skip
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "gpu-session.json").read_text())
    assert not [k for k, v in report.items() if isinstance(v, dict) and "error" in v], report
    assert {r["model"] for r in report["parity"]["temporal"]} == {"x4-temporal", "x4-temporal-quality", "x2-temporal"}
    assert all(r["max_abs_levels"] <= 1 for r in report["parity"]["single_frame"] + report["parity"]["temporal"])
    assert {(r["model"], r["input"], r["batch"]) for r in report["speed"]} >= {("x4-quality", "64x48", 4)}
    assert all(r["p50_ms"] > 0 for r in report["speed"] + report["temporal_speed"] + report["cpu_peer"])
