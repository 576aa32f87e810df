"""Time of an accumulating model's reprojection on the CPU: the block kernel against OpenCV, side by side.

    python benchmarks/fold_speed.py --size 320x180 --scale 4 --json benchmarks/results/fold-speed-x4.json

Subjects, each reprojecting the same state (``sH x sW x 4``: colour and weight, interleaved) into the folded
planes the network reads:

- ``blocks``: ``runtime.fold_cpu.fold_reproject_blocks``, what the engine runs;
- ``opencv interleaved``: one ``cv2.remap`` of the four channels and a ``cv2.split`` into planes, what the
  engine ran before (written out here as it was);
- ``opencv planes``: ``stream.fold_reproject``, one ``remap`` per plane.

Cases: the whole frame moving by a fractional motion (0.7 px left), half of it still, the camera still. Each
round times every subject once per case, in turn; the figure is the median over rounds, and its ratio to
``blocks`` in the same case.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np


def _interleaved_opencv(history, motion, scale, out):
    """The engine's reprojection before ``fold_cpu``: one bicubic ``remap`` of the interleaved state over the
    stacked sub-pixel maps, then a split into planes."""
    s, (h, w) = scale, motion.shape[1:]
    sub = np.arange(s, dtype=np.float32)
    map_x = (np.arange(w, dtype=np.float32) * s + sub[:, None])[None, :, None, :] + (motion[0] * s)[None, None]
    map_y = (np.arange(h, dtype=np.float32) * s + sub[:, None])[:, None, :, None] + (motion[1] * s)[None, None]
    warped = cv2.remap(history, map_x.reshape(-1, w), map_y.reshape(-1, w), cv2.INTER_CUBIC,
                       borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
    planes = out.reshape(4, s * s * h, w)
    cv2.split(warped, [planes[c] for c in range(4)])


def main() -> None:
    from upscaler.runtime.fold_cpu import fold_reproject_blocks, warm
    from upscaler.runtime.stream import fold_reproject
    from upscaler.sysinfo import machine_info

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="320x180", help="the low-resolution frame, WxH")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    s = args.scale
    history = np.random.default_rng(0).random((h * s, w * s, 4), dtype=np.float32)
    planar = np.ascontiguousarray(history.transpose(2, 0, 1))
    out = np.empty((4 * s * s, h, w), np.float32)
    cv2.setNumThreads(args.threads)
    warm()
    subjects = {
        "blocks": lambda m: fold_reproject_blocks(history, m, s, out, "cubic", args.threads),
        "opencv interleaved": lambda m: _interleaved_opencv(history, m, s, out),
        "opencv planes": lambda m: fold_reproject(planar, m, s, out, mode="cubic"),
    }
    moving = np.full((2, h, w), -0.7, np.float32)
    half = moving.copy()
    half[:, : h // 2] = 0.0
    cases = {"moving": moving, "half still": half, "still": np.zeros_like(moving)}
    times = {case: {name: [] for name in subjects} for case in cases}
    for _ in range(args.rounds):
        for case, motion in cases.items():
            for name, run in subjects.items():
                start = time.perf_counter()
                run(motion)
                times[case][name].append((time.perf_counter() - start) * 1000)
    report = {
        "command": "python benchmarks/fold_speed.py " + " ".join(__import__("sys").argv[1:]),
        "machine": machine_info(),
        "size": [w, h],
        "scale": s,
        "rounds": args.rounds,
        "threads": args.threads,
        "cases": {case: _summary(runs) for case, runs in times.items()},
    }
    for case, rows in report["cases"].items():
        for name, r in rows.items():
            print(f"{case:12s} {name:20s} {r['median_ms']:7.2f} ms  {r['vs_blocks']:.2f}x blocks")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


def _summary(runs: dict[str, list[float]]) -> dict:
    """Each subject's median (ms) and its ratio to ``blocks``'."""
    base = float(np.median(runs["blocks"]))
    return {name: {"median_ms": round(float(np.median(t)), 2), "vs_blocks": round(float(np.median(t)) / base, 2)}
            for name, t in runs.items()}  # fmt: skip


if __name__ == "__main__":
    main()
