"""Time per frame of a temporal model against a single-frame model, side by side in one run.

    python benchmarks/temporal_speed.py --temporal x4-temporal --single x4-fast --size 320x180 \
        --json benchmarks/results/temporal-speed-x4.json

Each round times every subject on the same frames in turn (interleaved, each
subject leading a round in turn, so machine noise hits all alike); the figure is the median over rounds of each
subject's median, and the ratio to the single-frame model. Subjects: the
single-frame model (``Upscaler.upscale``: uint8 frame in, uint8 frame out),
the temporal model with exact motion (``TemporalUpscaler.upscale``: reprojection,
network, blend, uint8 out) and with ``motion=None`` (optical flow included),
both unjittered (a video), and with exact motion and Halton(2,3) jitter (a
renderer, the DLSS case: the display filters for jittered frames run), over
the whole frame panning, with half of it still (both filters run), and with
the camera still (one frame, jittered: where the samples converge).
The frames are a real photo panned by one low-resolution pixel per frame.
Each subject's turn starts with one untimed frame (``--settle``): without it the subject
timed right after the single-frame model paid for that model's threads still
spinning (x4-temporal's own graphs, timed first and then as the baseline
in swapped runs, took 3.8-4.1 ms more per frame in the first place).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np


def pan_frames(w: int, h: int, count: int) -> tuple[list[np.ndarray], np.ndarray]:
    """``count`` ``w x h`` frames of a real photo panned one pixel left per frame, and their exact motion."""
    from upscaler.io import sample_images

    photo = cv2.resize(sample_images()[0][..., :3], (w + count, h), interpolation=cv2.INTER_AREA)
    motion = np.zeros((h, w, 2), np.float32)
    motion[..., 0] = -1.0  # the picture moves one pixel left per frame: the surface was one pixel to the left
    return [np.ascontiguousarray(photo[:, i : i + w]) for i in range(count)], motion


def _temporal_subjects(model: str, label: str, cases, frames, jitters, threads) -> dict:
    """``{"label (case)": run(i)}``: a stream of ``model`` per case (``cases``: name, motion or None for
    the optical flow, jittered or not, a still camera: frame 0 every time)."""
    from upscaler import TemporalUpscaler

    subjects = {}
    for case, motion, jittered, still in cases:
        stream = TemporalUpscaler(model, "onnxruntime-cpu", threads=threads)

        def run(i, stream=stream, motion=motion, jittered=jittered, still=still):
            jitter = jitters[i % 16] if jittered else (0.0, 0.0)
            frame = frames[0] if still else frames[i]
            return stream.upscale(frame, jitter) if motion is None else stream.upscale(frame, jitter, motion)

        subjects[f"{label} ({case})"] = run
    return subjects


def main() -> None:
    from upscaler import Upscaler
    from upscaler.bench.stats import in_turn
    from upscaler.sequences import jitter_sequence
    from upscaler.sysinfo import machine_info

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--temporal", default="x4-temporal")
    parser.add_argument("--single", default="x4-fast")
    parser.add_argument("--size", default="320x180")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--frames", type=int, default=8, help="timed frames per subject per round")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--settle", type=int, default=1, help="untimed frames at the start of each turn")
    parser.add_argument("--baseline", help="another temporal model (e.g. an earlier release's .safetensors with its "
                        "graphs) timed in the same rounds: exact motion, unjittered, jittered, jittered with half "
                        "the frame still and jittered with the camera still")  # fmt: skip
    parser.add_argument("--json")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    frames, motion = pan_frames(w, h, args.frames + 1)
    half = motion.copy()
    half[: h // 2] = 0.0  # the top half still (a still camera's background, and something moving below)
    jitters = jitter_sequence(16)
    still = np.zeros_like(motion)
    single = Upscaler(args.single, "onnxruntime-cpu", tile=0, threads=args.threads, precision="fp32")
    subjects = {f"{args.single} (single frame)": lambda i: single.upscale(frames[i])}
    # each case its own stream: (case, the frame's motion or None, jittered, the camera still)
    cases = [("exact motion", motion, False, False), ("motion=None", None, False, False),
             ("jittered", motion, True, False), ("jittered, half still", half, True, False),
             ("jittered, still camera", still, True, True)]  # fmt: skip
    subjects |= _temporal_subjects(args.temporal, args.temporal, cases, frames, jitters, args.threads)
    if args.baseline:
        path = Path(args.baseline)  # a weights file: its folder names the release; else a built-in model
        label = f"{path.parent.name}/{path.stem}" if path.suffix == ".safetensors" else args.baseline
        kept = [c for c in cases if c[0] != "motion=None"]
        subjects |= _temporal_subjects(args.baseline, label, kept, frames, jitters, args.threads)
    for run in subjects.values():  # warm-up, and the temporal streams get a history
        run(0)
    medians: dict[str, list[float]] = {name: [] for name in subjects}
    order = list(subjects.items())
    for turn in in_turn(order, args.rounds):
        for name, run in turn:
            for i in range(args.settle):  # what the previous subject left running or cached is not billed here
                run(i % (args.frames + 1))
            times = []
            for i in range(1, args.frames + 1):
                start = time.perf_counter()
                run(i)
                times.append((time.perf_counter() - start) * 1000)
            medians[name].append(float(np.median(times)))
    base = float(np.median(medians[f"{args.single} (single frame)"]))
    report = {
        "command": "python benchmarks/temporal_speed.py " + " ".join(__import__("sys").argv[1:]),
        "machine": machine_info(),
        "size": [w, h],
        "rounds": args.rounds,
        "frames": args.frames,
        "settle": args.settle,
        "subjects": {
            name: {
                "median_ms": round(float(np.median(m)), 2),
                "ratio": round(float(np.median(m)) / base, 2),
                "round_medians_ms": [round(v, 2) for v in m],
            }
            for name, m in medians.items()
        },
    }
    for name, r in report["subjects"].items():
        print(f"{name:40s} {r['median_ms']:8.2f} ms  {r['ratio']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
