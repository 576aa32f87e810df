"""x4 in two steps (an x2 model run twice) against the x4 models, for quality and time, side by side.

    python benchmarks/two_step.py --data ../shared/data/val/Set5 ../shared/data/val/BSD100 \
        --json benchmarks/results/two-step-x4.json

Issue 27 asks whether "x2 then x2" should serve x4 requests where it beats the x4 model. Quality: the
evaluation protocol (``upscaler.evaluate.evaluate_folder``: MATLAB-style bicubic LR, PSNR/SSIM on Y, 4 px
shaved) for each subject. Time: one 320x180 uint8 frame to 1280x720 per subject, interleaved round by round
(each subject leading a round in turn), ONNX Runtime FP32 on the CPU, no tiling; the figure is the median
over rounds and its ratio to the first x4 model's.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from upscaler import Upscaler
from upscaler.bench.report import emit_json
from upscaler.bench.stats import in_turn
from upscaler.evaluate import evaluate_folder
from upscaler.sysinfo import machine_info


def _subjects(x4: list[str], x2: list[str], threads: int | None) -> dict:
    """name -> (uint8 image -> uint8 image at 4x)."""
    make = lambda name: Upscaler(name, "onnxruntime-cpu", precision="fp32", threads=threads, tile=0)  # noqa: E731
    out = {name: make(name).upscale for name in x4}
    for name in x2:
        up = make(name)
        if up.model.scale != 2:
            raise SystemExit(f"{name} is x{up.model.scale}, not x2")
        out[f"{name} twice"] = lambda image, up=up: up.upscale(up.upscale(image))
    return out


def _times(subjects: dict, rounds: int, size: tuple[int, int]) -> dict:
    """Median time per subject over ``rounds`` interleaved rounds, and its ratio to the first subject's."""
    w, h = size
    frame = (np.random.default_rng(0).random((h, w, 3)) * 255).astype(np.uint8)
    items = list(subjects.items())
    for _, run in items:
        run(frame)  # warm-up
    times: dict[str, list[float]] = {name: [] for name in subjects}
    for turn in in_turn(items, rounds):
        for name, run in turn:
            start = time.perf_counter()
            run(frame)
            times[name].append(time.perf_counter() - start)
    first = statistics.median(times[items[0][0]])
    return {
        name: {"median_ms": round(1000 * statistics.median(t), 2), "ratio": round(statistics.median(t) / first, 3)}
        for name, t in times.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", required=True, help="folders of HR images")
    parser.add_argument("--x4", nargs="+", default=["x4-fast", "x4-quality"])
    parser.add_argument("--x2", nargs="+", default=["x2-fast"])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--json")
    args = parser.parse_args()
    subjects = _subjects(args.x4, args.x2, args.threads)
    started = time.time()
    quality = {
        name: {Path(f).name: evaluate_folder(Path(f), run, 4).summary() for f in args.data}
        for name, run in subjects.items()
    }
    report = {
        "measured": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python benchmarks/two_step.py " + " ".join(_argv(args)),
        "machine": machine_info(),
        "statistic": "quality: mean PSNR (dB) / SSIM on Y over each folder, 4 px shaved; time: median over "
        "interleaved rounds of one 320x180 -> 1280x720 frame, ratio to the first subject's median",
        "quality": quality,
        "time": {
            "size": [320, 180],
            "rounds": args.rounds,
            "threads": args.threads,
            "subjects": _times(subjects, args.rounds, (320, 180)),
        },
        "seconds": round(time.time() - started),
    }
    emit_json(report, args.json)


def _argv(args) -> list[str]:
    out = ["--data", *args.data, "--x4", *args.x4, "--x2", *args.x2, "--rounds", str(args.rounds)]
    if args.threads:
        out += ["--threads", str(args.threads)]
    return out + (["--json", args.json] if args.json else [])


if __name__ == "__main__":
    main()
