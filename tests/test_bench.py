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
