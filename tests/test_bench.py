"""The benchmark harness: statistics, sweep parsing, bad arguments, and short real runs (no speed asserted)."""

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli
from upscaler.bench import parse_size
from upscaler.bench.memory import MEMORY_NOTE, measure_memory
from upscaler.bench.peers import resize_peers
from upscaler.bench.report import add_ratios, format_markdown, format_table
from upscaler.bench.runner import Case, PeerSubject, run_cases
from upscaler.bench.stats import in_turn, latency_stats, percentile
from upscaler.bench.sweep import SIZE_PRESETS, parse_int_list, parse_sizes
from upscaler.sysinfo import cpu_flags, cpu_id, cpu_name, nvidia_driver

#: OpenCV dnn_superres models (ESPCN_x4.pb, ...) for the peer test; not in the repository: the shared data beside
#: a checkout has them (as CI's does), or UPSCALER_TEST_PEERS names a folder; elsewhere the test is skipped.
PEERS = Path(
    os.environ.get("UPSCALER_TEST_PEERS", Path(__file__).resolve().parents[2] / "shared" / "data" / "peers" / "opencv")
)


def test_percentiles_on_known_samples():
    samples = list(range(1, 101))  # 1..100 ms
    assert percentile(samples, 50) == pytest.approx(50.5)
    assert percentile(samples, 95) == pytest.approx(95.05)
    assert percentile(samples, 99) == pytest.approx(99.01)
    assert percentile([7.0], 99) == 7.0
    stats = latency_stats(samples, frames=4, output_pixels=1280 * 720)
    assert (stats["p50_ms"], stats["max_ms"], stats["mean_ms"], stats["runs"]) == (50.5, 100, 50.5, 100)
    assert stats["fps"] == pytest.approx(4000 / 50.5, rel=1e-3)
    assert stats["output_mpix_per_s"] == pytest.approx(1280 * 720 * 4 / 50.5 / 1000, rel=1e-2)
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_sweep_parsing():
    assert parse_size("720p") == (1280, 720) and parse_size("1080P") == (1920, 1080) and parse_size("64x48") == (64, 48)
    assert parse_sizes(["180p,270p", "180p", "32x20"]) == [(320, 180), (480, 270), (32, 20)]
    assert parse_int_list(["1,4", "16", "4"], "batch sizes") == [1, 4, 16]
    for bad in ("320", "axb", "0x10", "-3x4", "999p"):
        with pytest.raises(ValueError, match="size"):
            parse_size(bad)
    for bad in (["0"], ["x"], [","]):
        with pytest.raises(ValueError):
            parse_int_list(bad, "batch sizes")


def test_ratios_compare_each_row_with_the_first_of_its_size_scale_and_batch():
    def row(name, size, batch, fps, output="256x192"):
        return {"name": name, "input": size, "output": output, "batch": batch, "network": {"fps": fps},
                "end_to_end": {"fps": fps / 2}}  # fmt: skip

    rows = add_ratios([row("a", "64x48", 1, 100), row("b", "64x48", 1, 50), row("a", "128x72", 1, 40, "512x288"),
                       row("b", "128x72", 1, 80, "512x288"), row("b", "64x48", 4, 10),
                       row("x2", "64x48", 1, 300, "128x96"), row("bicubic", "64x48", 1, 600, "128x96")])  # fmt: skip
    # an x2 row starts its own comparison: never a ratio to an x4 row
    assert [r["end_to_end"]["ratio"] for r in rows] == [1.0, 0.5, 1.0, 2.0, 1.0, 1.0, 2.0]
    table = format_table([{**r, "kind": "peer", "engine": "e", "network": {**r["network"], "p50_ms": 1, "p99_ms": 1},
                           "end_to_end": {**r["end_to_end"], "p50_ms": 1, "p99_ms": 1}} for r in rows])  # fmt: skip
    assert table.splitlines()[0].split()[:5] == ["subject", "engine", "input", "output", "batch"]
    assert "128x96" in table.splitlines()[-1]


def test_a_short_real_run_writes_json_markdown_and_a_plot(tmp_path, set5_dir):
    out = {k: tmp_path / f"bench.{k}" for k in ("json", "md", "png")}
    result = run_cli(
        "bench", "-m", "x2", "--engine", "onnxruntime-cpu", "--precision", "fp32", "int8", "--size", "32x20,40x24",
        "--batch", "1,2", "--rounds", "1", "--runs", "2", "--warmup", "1", "--quality", str(set5_dir),
        "--quality-limit", "1", "--json", str(out["json"]), "--markdown", str(out["md"]), "--plot", str(out["png"]),
        "--no-progress", "--no-memory",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(out["json"].read_text())
    machine = report["machine"]
    assert machine["cores"] >= 1 and machine["libraries"]["onnxruntime"]
    assert machine["cpu"] == cpu_name() and machine["cpu_flags"] == list(cpu_flags())
    assert machine["cpu_id"] == cpu_id()  # "AMD EPYC" with AVX2 covers CPUs where INT8 gains 1.5x and nothing
    assert report["memory"] is None  # --no-memory: no figures, and no note claiming any
    rows = report["rows"]
    names = [(r["name"], r["precision"]) for r in rows if r["input"] == "32x20" and r["batch"] == 1]
    assert names == [("x2-fast", "fp32"), ("x2-fast", "int8"), ("bicubic", "-"), ("lanczos", "-")]
    assert len(rows) == 2 * 2 * 4  # sizes x batches x subjects
    for r in rows:
        assert r["network"]["runs"] == 2 and r["end_to_end"]["p50_ms"] > 0
        assert r["network"]["p50_ms"] <= r["network"]["p99_ms"] <= r["network"]["max_ms"]
        assert set(r["stages_p50_ms"]) == {"decode", "prepare", "infer", "finish", "encode"}
        assert r["end_to_end"]["ratio"] > 0 and r["quality"]["images"] == 1
        assert r["host_peak_mb"] is None and r["host_case_mb"] is None
        for view in ("network", "end_to_end"):  # what the harness computed from its own timings
            fps, p50 = r[view]["fps"], r[view]["p50_ms"]  # rounded to 0.01 and 0.001
            assert np.isfinite(fps) and fps > 0
            highest = 1000.0 * r["batch"] / (p50 - 5e-4) + 5e-3 if p50 > 5e-4 else float("inf")
            assert 1000.0 * r["batch"] / (p50 + 5e-4) - 5e-3 <= fps <= highest
        assert r["output"] == {"32x20": "64x40", "40x24": "80x48"}[r["input"]]
    assert [r["end_to_end"]["ratio"] for r in rows if r["name"] == "x2-fast" and r["precision"] == "fp32"] == [1.0] * 4
    header, *_ = out["md"].read_text().splitlines()
    assert header.startswith(f"Measured on {cpu_name()}") and out["png"].read_bytes()[:4] == b"\x89PNG"
    assert f"; CPU flags: {', '.join(cpu_flags()) or 'none detected'}" in header
    assert "| subject |" in out["md"].read_text()
    assert "x first" in result.stdout and "bicubic" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size", "big"], "size"),
        (["--batch", "0"], "batch"),
        (["--engine", "warp-drive"], "unknown engine"),
        (["--peers", "/no/such/dir"], "no such folder"),
        (["--json", "/no/such/dir/x.json"], "no such folder"),
        (["--budget-s", "-1"], "budget"),
    ],
)
def test_bad_arguments_are_one_clear_line(args, message):
    result = run_cli("bench", "--size", "16x16", "--rounds", "1", "--runs", "1", *args)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.skipif(nvidia_driver() is not None, reason="this machine has an NVIDIA driver")
def test_an_engine_this_machine_cannot_run_is_reported_not_fatal(tmp_path):
    out = tmp_path / "b.json"
    result = run_cli(
        "bench", "-m", "x2", "--engine", "torch-cuda", "onnxruntime-cpu", "--size", "16x16", "--rounds", "1",
        "--runs", "1", "--json", str(out), "--no-progress",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert [s["engine"] for s in report["skipped"]] == ["torch-cuda"]
    assert "skipped torch-cuda: no NVIDIA GPU driver" in result.stderr
    assert report["rows"][0]["engine"] == "onnxruntime-cpu"


def test_peer_folder_without_models_for_the_scale_is_refused(tmp_path):
    (tmp_path / "ESPCN_x3.pb").write_bytes(b"not used")
    result = run_cli("bench", "-m", "x4", "--size", "16x16", "--peers", str(tmp_path))
    assert result.returncode == 2 and "_x4.pb" in result.stderr


def test_choosing_peers_without_their_folder_is_refused():
    result = run_cli("bench", "-m", "x4", "--size", "16x16", "--peer", "espcn")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "give --peers DIR too" in result.stderr


@pytest.mark.skipif(not PEERS.is_dir(), reason=f"no peer models at {PEERS} (set UPSCALER_TEST_PEERS)")
def test_opencv_dnn_superres_peers_run_beside_our_engine(tmp_path):
    out = tmp_path / "b.json"
    common = ["bench", "-m", "x4", "--engine", "onnxruntime-cpu", "--size", "24x16", "--rounds", "1", "--runs", "1",
              "--peers", str(PEERS), "--no-progress"]  # fmt: skip
    result = run_cli(*common, "--json", str(out))
    assert result.returncode == 0, result.stderr
    names = [r["name"] for r in json.loads(out.read_text())["rows"]]
    assert names[:3] == ["x4-fast", "bicubic", "lanczos"] and {"ESPCN", "FSRCNN", "LapSRN"} <= set(names)
    chosen = run_cli(*common, "--peer", "espcn", "fsrcnn", "--json", str(out))  # LapSRN left out
    assert chosen.returncode == 0, chosen.stderr
    assert [r["name"] for r in json.loads(out.read_text())["rows"]][3:] == ["ESPCN", "FSRCNN"]


def test_a_peer_model_opencv_cannot_read_is_named_in_one_line(tmp_path):
    (tmp_path / "ESPCN_x4.pb").write_bytes(b"not a graph")
    result = run_cli("bench", "-m", "x4", "--engine", "onnxruntime-cpu", "--size", "16x16", "--peers", str(tmp_path),
                     "--no-progress")  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("upscaler: error:")]
    assert len(errors) == 1 and "ESPCN_x4.pb: OpenCV cannot read it" in errors[0], result.stderr


def test_markdown_has_the_machine_the_memory_and_the_stage_breakdown():
    row = {"kind": "engine", "name": "x4-fast", "engine": "onnxruntime-cpu", "precision": "fp32", "input": "8x8",
           "output": "32x32", "batch": 1, "network": {"p50_ms": 1.0, "p99_ms": 2.0, "fps": 9.0, "ratio": 1.0},
           "end_to_end": {"p50_ms": 3.0, "p99_ms": 4.0, "fps": 5.0, "ratio": 0.5}, "host_peak_mb": 180.25,
           "host_case_mb": 96.0, "stages_p50_ms": {"decode": 0.1, "prepare": 0.2, "infer": 1.0, "finish": 0.3,
           "encode": 1.4}}  # fmt: skip
    machine = {"cpu": "Test CPU 9000", "cores": 2, "cpu_flags": ["avx2", "fma", "avx512_vnni"], "gpus": []}
    lines = format_markdown([row], machine=machine, note=MEMORY_NOTE).splitlines()
    assert lines[0] == "Measured on Test CPU 9000, 2 cores; CPU flags: avx2, fma, avx512_vnni"
    assert MEMORY_NOTE in lines and "| host peak MB | case MB |" in lines[lines.index(MEMORY_NOTE) + 2]
    cells = [c.strip() for c in lines[-1].strip("|").split("|")]
    assert cells == ["x4-fast fp32", "onnxruntime-cpu", "8x8", "32x32", "1", "1.00", "2.00", "3.00", "4.00", "5.0",
                     "0.50", "-", "180.2", "96.0", "0.10 / 0.20 / 1.00 / 0.30 / 1.40"]  # fmt: skip
    bare = format_markdown([{**row, "host_peak_mb": None, "host_case_mb": None}], stages=False)
    assert bare.startswith("| subject |") and bare.splitlines()[-1].endswith("| - | - |")
    no_flags = format_markdown([row], machine={**machine, "cpu_flags": [], "gpus": [{"name": "H200"}]})
    assert no_flags.splitlines()[0] == "Measured on Test CPU 9000, 2 cores; CPU flags: none detected; GPU: H200"


def test_memory_is_measured_per_case_not_for_the_whole_process():
    ballast = np.ones(512 * 2**20 // 8)  # 512 MiB written, so resident in this process
    case = Case(PeerSubject(resize_peers(2)[0]), 32, 20, 1)
    run_cases([case], rounds=1, runs=1, warmup=0)
    assert measure_memory([case]) == []
    # A whole-process figure would be over 512 MiB here; bicubic on 32x20 alone needs Python, NumPy and OpenCV.
    assert 0 < case.host_peak_bytes < ballast.nbytes / 2
    assert 0 <= case.host_case_bytes < 32 * 2**20
    assert case.summary()["host_peak_mb"] == round(case.host_peak_bytes / 2**20, 1)
    del ballast


def test_each_row_of_a_run_has_its_own_memory(tmp_path):
    out = {k: tmp_path / f"bench.{k}" for k in ("json", "md")}
    result = run_cli(
        "bench", "-m", "x2", "--engine", "onnxruntime-cpu", "--precision", "fp32", "--size", "32x20", "--rounds",
        "1", "--runs", "1", "--warmup", "0", "--json", str(out["json"]), "--markdown", str(out["md"]), "--no-progress",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(out["json"].read_text())
    assert report["memory"] == MEMORY_NOTE and MEMORY_NOTE in out["md"].read_text()
    rows = {r["name"]: r for r in report["rows"]}
    assert set(rows) == {"x2-fast", "bicubic", "lanczos"}
    for r in rows.values():
        assert 0 <= r["host_case_mb"] < r["host_peak_mb"]
    # In one process every row would carry the same resident memory; alone, bicubic needs no model and no
    # ONNX Runtime.
    assert rows["bicubic"]["host_case_mb"] < rows["x2-fast"]["host_case_mb"]
    assert rows["bicubic"]["host_peak_mb"] < rows["x2-fast"]["host_peak_mb"]


def test_http_mode_measures_a_running_service_against_the_engine_in_one_run(tmp_path):
    from tests.server_helpers import serve

    out = tmp_path / "service.json"
    with serve(tmp_path, "--models", "x2", "--threads", "1") as server:
        result = run_cli(
            "bench", "-m", "x2", "--size", "32x20", "--url", server.url, "--concurrency", "1,3",
            "--requests", "12", "--rounds", "2", "--runs", "2", "--engine-baseline", "--json", str(out),
        )  # fmt: skip
        plain = run_cli("bench", "--size", "32x20", "--url", server.url, "--concurrency", "2", "--requests", "4")
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["direct"]["model"] == "x2-fast" and report["direct"]["calls"] == 4
    assert report["threads"] == {"service": 1, "in_process": 1}  # the baseline takes the service's threads
    assert isinstance(report["warnings"], list)
    assert report["machine"]["cpu"] == cpu_name() and report["machine"]["cpu_flags"] == list(cpu_flags())
    assert [row["concurrency"] for row in report["http"]] == [1, 3]
    for row in report["http"]:
        assert row["status"] == {"200": 12} and row["errors"] == 0
        assert len(row["rounds"]["throughput_ratio"]) == 2 and row["throughput_ratio"] > 0
    assert "x direct" in result.stdout
    assert plain.returncode == 0, plain.stderr
    assert "in-process" not in plain.stdout and "{'200': 4}" in plain.stdout


def test_a_service_faster_than_its_own_engine_is_flagged():
    from upscaler.bench.http import baseline_warnings

    rows = [{"concurrency": 1, "throughput_ratio": 1.52}, {"concurrency": 8, "throughput_ratio": 1.02}]
    (warning,) = baseline_warnings(rows, {"service": 1, "in_process": None})
    assert "1.52x" in warning and "at 1 client" in warning and "in-process default" in warning
    assert (
        baseline_warnings([{"concurrency": 1, "throughput_ratio": 1.05}], {"service": None, "in_process": None}) == []
    )


def test_http_mode_without_a_service_is_one_line(tmp_path):
    from tests.server_helpers import free_port

    result = run_cli("bench", "--url", f"http://127.0.0.1:{free_port()}", "--size", "16x16")
    assert result.returncode != 0 and "no service answers" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_help_lists_every_size_the_parser_takes():
    result = run_cli("bench", "--help")
    assert result.returncode == 0, result.stderr
    listed = set(re.findall(r"\b\d+p\b", result.stdout))
    assert set(SIZE_PRESETS) <= listed, f"missing from --help: {set(SIZE_PRESETS) - listed}"


def test_batch_size_is_the_sweep_batch_too(tmp_path):
    out = tmp_path / "b.json"
    result = run_cli(
        "bench", "-m", "x2", "--engine", "onnxruntime-cpu", "--precision", "fp32", "--size", "16x16", "--rounds", "1",
        "--runs", "1", "--warmup", "0", "--batch-size", "1,2", "--no-memory", "--no-progress", "--json", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())["settings"]["batches"] == [1, 2]


def test_plot_without_matplotlib_fails_before_measuring_anything(tmp_path):
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(
        "import importlib.abc, sys\n"
        "class _Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'matplotlib':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, _Block())\n"
    )
    out = tmp_path / "b.json"
    result = run_cli(
        "bench", "-m", "x2", "--engine", "onnxruntime-cpu", "--size", "16x16", "--rounds", "1", "--runs", "1",
        "--no-memory", "--no-progress", "--json", str(out), "--plot", str(tmp_path / "b.png"),
        env={"PYTHONPATH": str(shim)},
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "matplotlib" in result.stderr and "pip install 'upscaler[bench]'" in result.stderr
    assert not out.exists() and not result.stdout  # nothing was measured: no table, no report
    assert not (tmp_path / "b.png").exists()


def test_cpu_id_names_the_family_and_model_where_the_name_is_masked():
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    if "cpu family" not in text:
        assert cpu_id() == ""
        return
    first = dict(line.split(":", 1) for line in text.split("\n\n")[0].splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in first.items()}
    assert f"family {fields['cpu family']} model {fields['model']}" in cpu_id()
    assert cpu_id().startswith(fields.get("vendor_id", ""))


def test_in_turn_lets_each_subject_lead_a_round_and_keeps_every_subject_once():
    rounds = list(in_turn(["a", "b", "c"], 4))
    assert [r[0] for r in rounds] == ["a", "b", "c", "a"]
    assert all(sorted(r) == ["a", "b", "c"] for r in rounds)
