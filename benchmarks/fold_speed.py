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
``blocks`` in the same case. The subjects' planes are compared first (they must agree to 1e-4).

``--step MODEL`` times the whole step instead, 8-bit frames in and out, with each reprojection in the engine
(OpenCV's put in its place for its turns), beside the single-frame model (``--single``), as
``temporal_speed.py`` does:

    python benchmarks/fold_speed.py --step x2-temporal --single x2-fast --rounds 25 \
        --json benchmarks/results/fold-step-x2.json
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
    map_x, map_y = np.empty((s, s, h, w), np.float32), np.empty((s, s, h, w), np.float32)  # (i, j, y, x)
    np.add((np.arange(w, dtype=np.float32) * s + sub[:, None])[None, :, None, :], motion[0] * s, out=map_x)
    np.add((np.arange(h, dtype=np.float32) * s + sub[:, None])[:, None, :, None], motion[1] * s, out=map_y)
    warped = cv2.remap(history, map_x.reshape(-1, w), map_y.reshape(-1, w), cv2.INTER_CUBIC,
                       borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
    planes = out.reshape(4, s * s * h, w)
    cv2.split(warped, [planes[c] for c in range(4)])


def main() -> None:
    from upscaler.sysinfo import machine_info

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="320x180", help="the low-resolution frame, WxH")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--step", help="an accumulating model: time its whole step (16 frames a round) with each "
                        "reprojection, against --single, instead of the reprojection alone")  # fmt: skip
    parser.add_argument("--single", default="x4-fast", help="the single-frame model --step is timed against")
    parser.add_argument("--json")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    cases, report = (_steps(args, w, h), {"model": args.step, "single": args.single}) if args.step else (
        _folds(args, w, h), {"scale": args.scale})  # fmt: skip
    report = {
        "command": "python benchmarks/fold_speed.py " + " ".join(__import__("sys").argv[1:]),
        "machine": machine_info(),
        "size": [w, h],
        **report,
        "rounds": args.rounds,
        "threads": args.threads,
        "cases": cases,
    }
    for case, rows in report["cases"].items():
        for name, r in rows.items():
            base, ratio = next((k[3:], v) for k, v in r.items() if k.startswith("vs_"))
            print(f"{case:24s} {name:20s} {r['median_ms']:7.2f} ms  {ratio:.2f}x {base}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


def _folds(args, w: int, h: int) -> dict:
    """The reprojection alone, each subject on the same state and motion: ``{case: _summary}``."""
    from upscaler.runtime.fold_cpu import fold_reproject_blocks, warm
    from upscaler.runtime.stream import fold_reproject

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
    for case, motion in cases.items():  # every subject computes the same planes (to rounding), or none is timed
        planes = []
        for run in subjects.values():
            run(motion)
            planes.append(out.copy())
        if any(np.abs(p - planes[0]).max() > 1e-4 for p in planes[1:]):
            raise SystemExit(f"the subjects disagree on the {case} case")
    times = {case: {name: [] for name in subjects} for case in cases}
    for _ in range(args.rounds):
        for case, motion in cases.items():
            for name, run in subjects.items():
                start = time.perf_counter()
                run(motion)
                times[case][name].append((time.perf_counter() - start) * 1000)
    return {case: _summary(runs) for case, runs in times.items()}


def _steps(args, w: int, h: int) -> dict:
    """The whole step of ``args.step`` (``TemporalUpscaler``, 8-bit frames in and out) with the engine's
    reprojection and with OpenCV's in its place, a stream of each per case, and ``args.single``: each round
    times every subject over 16 frames in turn (the order reversed every other round), the figure is the
    median over rounds of each subject's median frame: ``{case: _summary}``, the single-frame model's time
    under ``single``."""
    from temporal_speed import pan_frames

    from upscaler import TemporalUpscaler, Upscaler
    from upscaler.runtime import fold_cpu
    from upscaler.sequences import jitter_sequence

    frames, motion = pan_frames(w, h, 17)
    half = motion.copy()
    half[: h // 2] = 0.0
    jitters, blocks = jitter_sequence(16), fold_cpu.fold_reproject_blocks
    folds = {"blocks": blocks, "opencv interleaved": lambda history, m, s, out, mode, threads: _interleaved_opencv(
        history, m, s, out)}  # fmt: skip
    single = Upscaler(args.single, "onnxruntime-cpu", tile=0, threads=args.threads, precision="fp32")
    cases = {"exact motion": (motion, False), "jittered": (motion, True), "jittered, half still": (half, True),
             "jittered, still camera": (np.zeros_like(motion), True)}  # fmt: skip
    times = {case: {name: [] for name in [*folds, "single"]} for case in cases}
    for case, (mv, jittered) in cases.items():
        streams = {name: TemporalUpscaler(args.step, "onnxruntime-cpu", threads=args.threads) for name in folds}
        for r in range(args.rounds):
            for name in [*folds, "single"][:: 1 if r % 2 == 0 else -1]:
                fold_cpu.fold_reproject_blocks = folds.get(name, blocks)
                still = case.endswith("still camera")

                def run(i, name=name, still=still, jittered=jittered, mv=mv, streams=streams):
                    if name == "single":
                        return single.upscale(frames[i])
                    frame, jitter = frames[0] if still else frames[i], jitters[i % 16] if jittered else (0.0, 0.0)
                    return streams[name].upscale(frame, jitter, mv)

                run(0)  # settled: what the subject before left running is not billed here
                clocked = []
                for i in range(1, 17):
                    start = time.perf_counter()
                    run(i)
                    clocked.append((time.perf_counter() - start) * 1000)
                times[case][name].append(float(np.median(clocked)))
    fold_cpu.fold_reproject_blocks = blocks
    return {case: _summary(runs, "single") for case, runs in times.items()}


def _summary(runs: dict[str, list[float]], base: str = "blocks") -> dict:
    """Each subject's median (ms) and its ratio to ``base``'s (``vs_<base>``)."""
    median = {name: float(np.median(t)) for name, t in runs.items()}
    return {name: {"median_ms": round(m, 2), f"vs_{base}": round(m / median[base], 2)} for name, m in median.items()}


if __name__ == "__main__":
    main()
