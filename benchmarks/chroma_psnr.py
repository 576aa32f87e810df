"""Colour as well as luma: PSNR of Y, Cb, Cr and RGB for temporal models over the harness's rendered sequences.

    python benchmarks/chroma_psnr.py --sequences ../shared/data/train/extra/mcmaster --kinds still slow \\
        -m x4-temporal runs/before/x4-temporal-lite-before.safetensors --json benchmarks/results/chroma.json

``upscaler bench --sequences`` scores the luma (PSNR-Y, the field's
convention). A display filter that sharpens the luma only (``AccumSR``'s
``detail`` with identity 1x1 filters: the chroma shown as accumulated) keeps
PSNR-Y and changes the colour: this script tells by how much. Each model
runs on ONNX Runtime's CPU engine with exact motion over the same sequences;
the figures are means over the frames from ``--warmup`` on (the harness's
steady state), 4 px shaved, per kind.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

#: BT.601 rows of Y, Cb and Cr from RGB in [0, 255] (studio range: what ``upscaler.metrics.rgb_to_y`` gives for Y).
_YCC = np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]]) / 255.0


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


def scores(output: np.ndarray, reference: np.ndarray, shave: int) -> dict[str, float]:
    """PSNR of each of Y, Cb, Cr and of RGB (``H x W x 3`` uint8 frames), ``shave`` pixels off each border."""
    crop = (slice(shave, -shave or None), slice(shave, -shave or None))
    out, ref = output[crop].astype(np.float64), reference[crop].astype(np.float64)
    ycc_out, ycc_ref = out @ _YCC.T, ref @ _YCC.T
    found = {name: _psnr(ycc_out[..., k], ycc_ref[..., k]) for k, name in enumerate(("y", "cb", "cr"))}
    return found | {"rgb": _psnr(out, ref)}


def run_model(model: str, sequences, warmup: int, shave: int) -> dict[str, dict[str, float]]:
    """Mean scores per kind of ``model`` over ``sequences`` (each a fresh stream)."""
    from upscaler import TemporalUpscaler

    per_kind: dict[str, list[dict[str, float]]] = {}
    for sequence in sequences:
        up = TemporalUpscaler(model, "onnxruntime-cpu")
        for t, f in enumerate(sequence.frames):
            out = up.upscale(f.lr, f.jitter, f.motion, f.depth)
            if t >= warmup:
                per_kind.setdefault(sequence.kind, []).append(scores(out, f.hr, shave))
    return {
        kind: {k: round(float(np.mean([r[k] for r in rows])), 2) for k in rows[0]} for kind, rows in per_kind.items()
    }


def main() -> None:
    from upscaler.bench.rendered import iter_standard_sequences
    from upscaler.sysinfo import machine_info

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", required=True, type=Path, help="a folder of images (the harness's)")
    parser.add_argument("-m", "--models", nargs="+", required=True)
    parser.add_argument("--kinds", nargs="+", help="sequence kinds (default: the standard set)")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=8)
    parser.add_argument("--json")
    args = parser.parse_args()
    sequences = list(iter_standard_sequences(args.sequences, args.scale, limit=args.limit, kinds=args.kinds))
    report = {
        "command": "python benchmarks/chroma_psnr.py " + " ".join(__import__("sys").argv[1:]),
        "machine": machine_info(),
        "sequences": len(sequences),
        "warmup": args.warmup,
        "models": {m: run_model(m, sequences, args.warmup, args.scale) for m in args.models},
    }
    for model, kinds in report["models"].items():
        for kind, s in kinds.items():
            print(f"{model:50s} {kind:10s} " + "  ".join(f"{k} {v:.2f}" for k, v in s.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
