"""Tables and a plot from ``gpu_session.py``'s JSON: what the README and benchmarks/README quote.

    python benchmarks/gpu_report.py benchmarks/results/gpu-h200-session.json \
        --markdown benchmarks/results/gpu-h200.md --plot benchmarks/results/gpu-h200.png

Ceilings for the bound analysis (the bf16 matrix rate and the device-to-device
copy rate of this workplace's H200 machines) are read from
``benchmarks/results/h200-ceilings.json``, which says where they come from.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

_CEILINGS = json.loads((REPO / "benchmarks" / "results" / "h200-ceilings.json").read_text())
MATRIX_TFLOPS, COPY_TBS = _CEILINGS["bf16_matrix_tflops"], _CEILINGS["copy_tb_per_s"]
SIZES = ("480x270", "960x540", "1920x1080")


def pick(rows, **match) -> dict | None:
    """The first row whose fields equal ``match``."""
    return next((r for r in rows if all(r.get(k) == v for k, v in match.items())), None)


def _cell(rows, **match) -> str:
    row = pick(rows, **match)
    return f"{row['p50_ms']:.3f}" if row else "-"


def network_table(rows: list[dict]) -> list[str]:
    lines = ["| model | precision | CUDA graph | " + " | ".join(f"{s} b1 | {s} b4" for s in SIZES) + " |",
             "|---|---|---|" + "---|---|" * len(SIZES)]  # fmt: skip
    keys = sorted({(r["model"], r["precision"], r["cuda_graph"]) for r in rows}, key=lambda k: (k[0], k[1], k[2]))
    for model, precision, graph in keys:
        cells = [_cell(rows, model=model, precision=precision, cuda_graph=graph, input=s, batch=b)
                 for s in SIZES for b in (1, 4)]  # fmt: skip
        lines.append(f"| {model} | {precision} | {'yes' if graph else 'no'} | " + " | ".join(cells) + " |")
    return lines


def temporal_table(rows: list[dict]) -> list[str]:
    lines = ["| model | precision | CUDA graph | " + " | ".join(SIZES) + " |", "|---|---|---|" + "---|" * len(SIZES)]
    for model, precision, graph in sorted({(r["model"], r["precision"], r["cuda_graph"]) for r in rows}):
        cells = [_cell(rows, model=model, precision=precision, cuda_graph=graph, input=s) for s in SIZES]
        lines.append(f"| {model} | {precision} | {'yes' if graph else 'no'} | " + " | ".join(cells) + " |")
    return lines


def bound(name: str, macs_per_pixel: float, channels: int, layers: int, ms: float) -> str:
    """Achieved rate against the two ceilings at 960x540 -> 3840x2160, FP16."""
    pixels = 960 * 540
    flops = 2 * macs_per_pixel * pixels
    # each layer's activations written once and read once (FP16), the 4K output written once
    moved = layers * channels * pixels * 2 * 2 + 3 * 16 * pixels * 2
    return (f"| {name} | {flops / 1e9:.0f} GFLOP, {flops / MATRIX_TFLOPS / 1e9:.2f} ms | {moved / 1e9:.2f} GB, "
            f"{moved / COPY_TBS / 1e9:.2f} ms | {ms:.2f} ms | {flops / ms / 1e9:.0f} TFLOP/s "
            f"({100 * flops / ms / 1e9 / MATRIX_TFLOPS:.0f}% of the matrix rate) |")  # fmt: skip


def report(session: dict, extra: dict | None) -> str:
    from upscaler.models import get_model

    env = session["env"]
    speed = [r for r in session["speed"] if isinstance(r, dict)]
    out = [f"Measured {session['started'][:10]} on one {env['device']} (sm {env['sm']}, {env['multiprocessors']} SMs, "
           f"driver {env['nvidia_smi'].split(',')[0]}), PyTorch {env['torch']} (CUDA {env['cuda']}, cuDNN "
           f"{env['cudnn']}), host {env['cpu']} x {env['cpu_cores']} ({', '.join(env['cpu_flags'])}). "
           f"{session['note']}.", "",
           "## Single-frame networks, input and output on the device (p50 ms per call, CUDA events)", "",
           *network_table(speed), "", "## The temporal step (warp, network, blend; history on the device)", "",
           *temporal_table(session["temporal_speed"]), ""]  # fmt: skip
    cand = [r for r in session.get("candidate_speed") or [] if isinstance(r, dict)]
    if cand:
        out += ["## The GPU-trained candidate (64 channels x 10), FP16", "", *temporal_table(cand), ""]
    fp16_graph = {"precision": "fp16", "cuda_graph": True, "batch": 1}
    out += ["## This machine's CPU engine against the GPU, 480x270, batch 1", "",
            "| model | onnxruntime-cpu FP32 (all cores) | torch-cuda FP16, graph | ratio |",
            "|---|---|---|---|"]  # fmt: skip
    for peer in session["cpu_peer"]:
        gpu = pick(speed, model=peer["model"], input="480x270", **fp16_graph)
        out.append(f"| {peer['model']} | {peer['p50_ms']:.1f} ms | {gpu['p50_ms']:.3f} ms | "
                   f"{peer['p50_ms'] / gpu['p50_ms']:.0f}x |")  # fmt: skip
    out += ["", "## What bounds x4-quality at 960x540 -> 3840x2160, FP16", "",
            "| network | arithmetic at the matrix rate | bytes at the copy rate | measured (graph) | achieved |",
            "|---|---|---|---|---|"]  # fmt: skip
    q = pick(speed, model="x4-quality", input="960x540", **fp16_graph)
    out.append(bound("x4-quality (48 ch x 8)", get_model("x4-quality").macs_per_pixel, 48, 11, q["p50_ms"]))
    c = [r for r in cand if r["input"] == "960x540" and r["cuda_graph"]]
    if c:
        out.append(bound("candidate (64 ch x 10)", 399_360, 64, 13, c[0]["p50_ms"]))
    out += ["", "## Parity with the CPU engine", "", "| model | engine | precision | check | max abs | min PSNR |",
            "|---|---|---|---|---|---|"]  # fmt: skip
    parity = session["parity"]
    for r in parity["single_frame"] + parity["temporal"]:
        images = f"{r['frames']} frames" if "frames" in r else "5 Set5"
        check = r.get("check", f"against onnxruntime-cpu ({images})")
        value, score = r.get("max_abs_levels", r.get("max_abs")), r.get("min_psnr_db", "-")
        out.append(f"| {r['model']} | torch-cuda | {r['precision']} | {check} | {value} | {score} |")
    tests = session["pytest"]
    out += ["", f"`pytest -m gpu`: {tests['tail'].strip().splitlines()[-1]} (rc {tests['rc']})."]
    if extra and extra.get("cudnn"):
        out += ["", "## cuDNN's autotuner (a second machine, same kind), 960x540, FP16", "",
                "| network | precision | CUDA graph | autotuner off | autotuner on |",
                "|---|---|---|---|---|"]  # fmt: skip
        rows = extra["cudnn"]
        for key in sorted({(r.get("weights", r["model"]), r["precision"], r["cuda_graph"]) for r in rows}):
            same = [r for r in rows if (r.get("weights", r["model"]), r["precision"], r["cuda_graph"]) == key]
            off = [r["p50_ms"] for r in same if not r["cudnn_benchmark"]]
            on = [r["p50_ms"] for r in same if r["cudnn_benchmark"]]
            name = "candidate (64 ch x 10)" if key[0].endswith(".safetensors") else key[0]
            out.append(f"| {name} | {key[1]} | {'yes' if key[2] else 'no'} | {off[0]:.3f} | {on[0]:.3f} |")
    return "\n".join(out) + "\n"


def plot(session: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    rows = [r for r in session["speed"] + session["temporal_speed"] if r["batch"] == 1 and r["cuda_graph"]]
    for model, precision in sorted({(r["model"], r["precision"]) for r in rows}):
        pts = sorted((int(r["output"].split("x")[0]) * int(r["output"].split("x")[1]) / 1e6, r["p50_ms"])
                     for r in rows if r["model"] == model and r["precision"] == precision)  # fmt: skip
        ax.plot(*zip(*pts), marker="o", linestyle="-" if precision == "fp16" else "--", label=f"{model} {precision}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("output megapixels (480x270, 960x540, 1920x1080 input)")
    ax.set_ylabel("p50 ms per frame, on the device, CUDA graph")
    ax.set_title(f"PyTorch CUDA on one {session['env']['device']}, batch 1")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("session", type=Path)
    ap.add_argument("--extra", type=Path, help="a second call's JSON (the cuDNN autotuner stage)")
    ap.add_argument("--markdown", type=Path, required=True)
    ap.add_argument("--plot", type=Path)
    args = ap.parse_args()
    session = json.loads(args.session.read_text())
    extra = json.loads(args.extra.read_text()) if args.extra else None
    args.markdown.write_text(report(session, extra))
    if args.plot:
        plot(session, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
