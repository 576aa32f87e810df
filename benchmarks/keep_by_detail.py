"""How much history an accumulating model keeps on a still camera, where the picture has fine detail and where it
is flat: its state's accumulated weight and its PSNR-Y by region, beside plain accumulation's PSNR.

    python benchmarks/keep_by_detail.py --images ../shared/data/val/BSD100 --limit 24 \
        -m x4-temporal x4-temporal-quality --json benchmarks/results/keep-by-detail-bsd100.json

Each image gives the still shot of ``upscaler bench --sequences`` (a jittered still camera, 96x64 in, 32
frames). A still camera should keep everything it gathered: a model that rejects its history where jittered
samples of aliased detail disagree shows a low weight there (and loses to plain accumulation, which keeps
all). Regions, from the reference's luma: ``detail``, the quarter of pixels with the largest local gradient
(Sobel magnitude, 5x5 mean); ``flat``, the half with the smallest. The weight is the state's fourth channel
(the gathered share of the model's cap; times ``cap``: samples) averaged over frames 8 to 31, and PSNR-Y is over
those frames' pixels of each region (4 px shaved). The weight is read from the ONNX Runtime CPU engine's state.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

WARMUP, FRAMES, SIZE, SHAVE = 8, 32, (96, 64), 4


def _luma(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)[..., 0].astype(np.float64)


def _regions(reference: np.ndarray) -> dict[str, np.ndarray]:
    """``detail`` and ``flat`` masks of the reference (uint8 RGB), shaved."""
    y = _luma(reference)
    energy = cv2.blur(np.hypot(cv2.Sobel(y, cv2.CV_64F, 1, 0), cv2.Sobel(y, cv2.CV_64F, 0, 1)), (5, 5))
    inner = np.zeros(y.shape, bool)
    inner[SHAVE:-SHAVE, SHAVE:-SHAVE] = True
    high, low = np.quantile(energy[inner], [0.75, 0.5])
    return {"detail": inner & (energy >= high), "flat": inner & (energy <= low)}


def _shot(model: str | None, frames, regions) -> dict:
    """One still shot through ``model`` (None: plain accumulation): squared errors and weights by region."""
    from upscaler import TemporalUpscaler
    from upscaler.temporal.accumulate import PlainAccumulator

    stream = PlainAccumulator(4) if model is None else TemporalUpscaler(model, "onnxruntime-cpu")
    errors = {name: [] for name in regions}
    weights = {name: [] for name in regions}
    for t, f in enumerate(frames):
        out = stream.step(f.lr, f.jitter, f.motion) if model is None else stream.upscale(f.lr, f.jitter, f.motion)
        if t < WARMUP:
            continue
        diff = (_luma(out) - _luma(f.hr)) ** 2
        state = None if model is None else stream.engine._history  # the accumulating CPU engine's sH x sW x 4
        for name, mask in regions.items():
            errors[name].append(float(diff[mask].mean()))
            if state is not None:
                weights[name].append(float(state[..., 3][mask].mean()))
    report = {f"{name}_psnr": 10 * np.log10(255**2 / np.mean(e)) for name, e in errors.items()}
    return report | ({f"{name}_weight": float(np.mean(w)) for name, w in weights.items()} if model else {})


def main() -> None:
    from upscaler.io import read_image
    from upscaler.pipeline import to_rgb8
    from upscaler.sequences import Camera, SequenceSpec, make_sequence
    from upscaler.sysinfo import machine_info

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True, help="a folder of images")
    parser.add_argument("--limit", type=int, default=24)
    parser.add_argument("-m", "--models", nargs="+", default=["x4-temporal", "x4-temporal-quality"])
    parser.add_argument("--json")
    args = parser.parse_args()
    files = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in (".png", ".jpg", ".webp", ".bmp"))
    rows = []
    for path in files[: args.limit]:
        scene = to_rgb8(read_image(path))
        h, w = scene.shape[:2]
        spec = SequenceSpec(scale=4, size=SIZE, frames=FRAMES, camera=Camera(center=(w / 2, h / 2)))
        frames = make_sequence(scene, spec)
        regions = _regions(frames[-1].hr)
        row = {"image": path.name, "accumulation": _shot(None, frames, regions)}
        row |= {model: _shot(model, frames, regions) for model in args.models}
        rows.append(row)
        shown = {k: {m: round(v, 3) for m, v in r.items()} for k, r in row.items() if k != "image"}
        print(path.name, json.dumps(shown))
    subjects = ["accumulation", *args.models]
    mean = {s: {k: round(float(np.mean([r[s][k] for r in rows])), 3) for k in rows[0][s]} for s in subjects}
    print("mean", json.dumps(mean))
    if args.json:
        report = {"command": "python benchmarks/keep_by_detail.py " + " ".join(__import__("sys").argv[1:]),
                  "machine": machine_info(), "images": args.images, "mean": mean, "rows": rows}  # fmt: skip
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
