"""The latency harness: real engines, real timings, structure and errors (no speed asserted)."""

import json

import pytest

from tests.conftest import run_cli
from upscaler.bench import measure, parse_size


def test_measure_times_network_and_end_to_end_side_by_side():
    results = measure(["x2-fast", "x4-fast"], (40, 24), rounds=2, runs=2, warmup=1)
    assert [r.model for r in results] == ["x2-fast", "x4-fast"]
    for r in results:
        s = r.summary()
        assert s["network"]["runs"] == 4 and s["end_to_end"]["runs"] == 4
        assert 0 < s["network"]["median_ms"] <= s["network"]["p95_ms"] + 1e-9
        assert s["engine"] == "onnxruntime-cpu" and (s["width"], s["height"]) == (40, 24)


def test_precisions_and_batch_sizes_are_cases_of_their_own():
    results = measure(["x4-fast"], (24, 16), rounds=1, runs=2, warmup=1, precisions=["fp32", "int8"], batches=[1, 3])
    assert [(r.precision, r.batch) for r in results] == [("fp32", 1), ("fp32", 3), ("int8", 1), ("int8", 3)]
    s = results[1].summary()
    assert s["batch"] == 3 and s["network"]["fps"] == pytest.approx(3000 / s["network"]["median_ms"], rel=0.01)
    with pytest.raises(ValueError, match="batch"):
        measure(["x4-fast"], (8, 8), rounds=1, runs=1, batches=[0])


@pytest.mark.parametrize("text", ["320", "axb", "0x10", "-3x4"])
def test_bad_sizes_are_refused(text):
    with pytest.raises(ValueError, match="size"):
        parse_size(text)


def test_bench_cli_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    result = run_cli("bench", "-m", "x2", "--size", "32x20", "--rounds", "1", "--runs", "2", "--json", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["machine"]["cores"] >= 1 and report["results"][0]["model"] == "x2-fast"
    bad = run_cli("bench", "--size", "big")
    assert bad.returncode == 2 and "size" in bad.stderr and "Traceback" not in bad.stderr


def test_http_mode_measures_a_running_service_against_the_engine_in_one_run(tmp_path):
    from tests.server_helpers import serve

    out = tmp_path / "service.json"
    with serve(tmp_path, "--models", "x2") as server:
        result = run_cli(
            "bench", "-m", "x2", "--size", "32x20", "--http", server.url, "--concurrency", "1", "3",
            "--requests", "12", "--rounds", "2", "--runs", "2", "--json", str(out),
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["direct"]["model"] == "x2-fast" and report["direct"]["calls"] == 4
    assert [row["concurrency"] for row in report["http"]] == [1, 3]
    for row in report["http"]:
        assert row["status"] == {"200": row["requests"]} and row["requests"] >= 12
        assert len(row["rounds"]["throughput_ratio"]) == 2 and row["throughput_ratio"] > 0
    assert "x direct" in result.stdout


def test_http_mode_without_a_service_is_one_line(tmp_path):
    from tests.server_helpers import free_port

    result = run_cli("bench", "--http", f"http://127.0.0.1:{free_port()}", "--size", "16x16")
    assert result.returncode != 0 and "no service answers" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
