"""Where ONNX Runtime's CPU time goes in a model's FP32 and INT8 graphs: per-node kernel time, side by side.

    python benchmarks/profile_graph.py -m x4-fast --size 320x180 --json benchmarks/results/profile-x4-fast.json

Runs each graph with ONNX Runtime's profiler (same session options as the
engine: all graph optimisations), interleaving the graphs over rounds, and
reports the median time per optimised node, grouped by operator, with the
CPU and its flags. This is how the INT8 speed-up on a given CPU is
explained: which kernels the convolutions became (QLinearConv or a float
Conv behind Q/DQ pairs) and how much of the frame is left in data movement
(DepthToSpace, quantise, dequantise, layout transposes).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np


def profile(path: Path, batch: np.ndarray, runs: int) -> dict[str, list[float]]:
    """Kernel time (ms) of each optimised node over ``runs`` calls."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_profiling = True
    options.log_severity_level = 3
    with tempfile.TemporaryDirectory() as work:
        options.profile_file_prefix = str(Path(work) / "profile")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        for _ in range(3 + runs):
            session.run(None, {name: batch})
        events = json.loads(Path(session.end_profiling()).read_text())
    times: dict[str, list[float]] = defaultdict(list)
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            times[f"{event['args']['op_name']} {event['name'][: -len('_kernel_time')]}"].append(event["dur"] / 1000)
    return {node: ms[3:] for node, ms in times.items()}  # the warm-up calls are dropped


def summarise(times: dict[str, list[float]]) -> dict:
    """Median per node, totals per operator type."""
    nodes = {node: round(float(np.median(ms)), 3) for node, ms in times.items()}
    by_op: dict[str, float] = defaultdict(float)
    for node, ms in nodes.items():
        by_op[node.split(" ", 1)[0]] += ms
    total = sum(nodes.values())
    return {
        "total_ms": round(total, 2),
        "by_op_ms": {op: round(ms, 2) for op, ms in sorted(by_op.items(), key=lambda kv: -kv[1])},
        "nodes_ms": dict(sorted(nodes.items(), key=lambda kv: -kv[1])),
    }


def main() -> None:
    from upscaler.models import get_model
    from upscaler.sysinfo import cpu_count, cpu_flags, cpu_id, cpu_name, libraries

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", "-m", default="x4-fast")
    parser.add_argument("--size", default="320x180", help="input WxH (default: 320x180)")
    parser.add_argument("--precision", nargs="+", default=["fp32", "int8"])
    parser.add_argument("--runs", type=int, default=20, help="profiled calls per graph (default: 20)")
    parser.add_argument("--json", help="write the report here")
    args = parser.parse_args()
    model = get_model(args.model)
    w, h = (int(v) for v in args.size.lower().split("x"))
    batch = np.random.default_rng(0).random((1, model.channels, h, w), dtype=np.float32)
    report = {
        "command": "python benchmarks/profile_graph.py " + " ".join(os.sys.argv[1:]),
        "machine": {"cpu": cpu_name(), "cpu_id": cpu_id(), "cpu_flags": list(cpu_flags()), "cores": cpu_count()},
        "onnxruntime": libraries()["onnxruntime"],
        "model": model.name,
        "size": [w, h],
        "graphs": {p: summarise(profile(model.graph(p).verified(), batch, args.runs)) for p in args.precision},
    }
    for precision, graph in report["graphs"].items():
        ops = ", ".join(f"{op} {ms:.1f}" for op, ms in graph["by_op_ms"].items() if ms >= 0.1)
        print(f"{model.name} {precision}: {graph['total_ms']:.1f} ms of kernels ({ops})")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
