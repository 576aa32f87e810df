"""Video throughput of a temporal model against a single-frame model: ``upscaler video`` on the same real clip.

    python benchmarks/video_temporal.py --json benchmarks/results/video-temporal-x4.json

The clip: the first ``--seconds`` of the real 720p clip in ``../shared/data/video``
(with its audio), reduced to ``--size`` (320x180 by default: x4 of 720p would be
5K frames) with PyAV. Each round runs ``upscaler video`` once per subject, in
turn (interleaved, so machine noise hits all alike), as a user would: the
console script, default settings, a fresh output. Subjects: the single-frame
model with its defaults (on the CPU its precision is INT8 where this CPU
runs that faster, else FP32: ``upscaler/runtime/cpu_precision.py``), the
temporal model with its defaults (FP32, motion estimated, resets at segment
starts and cuts) and, for reference, the single-frame model with
``--precision fp32``. The figure per subject is the median over rounds of
the pipeline's frames per second (the JSON summary's ``fps``: frames over the
job's wall time, engine loading excluded); ``--engine-baseline`` adds the
engine alone on the clip's frames. Ratios are temporal over single-frame.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO.parent / "shared" / "data" / "video" / "concourse_720p50_audio.avi"


def cut_clip(source: Path, target: Path, seconds: float, size: tuple[int, int]) -> int:
    """The first ``seconds`` of ``source``, frames resized to ``size`` (area), audio of that span copied; frames."""
    sys.path.insert(0, str(Path(__file__).parent))
    from make_clip import make_clip

    return make_clip(source, target, size, seconds)


def run_video(clip: Path, work: Path, name: str, options: list[str], env: dict) -> dict:
    """One ``upscaler video`` run; its JSON summary's entry, with the whole process's wall time added."""
    exe = Path(sys.executable).with_name("upscaler")
    out, summary = work / f"{name}.mkv", work / f"{name}.json"
    out.unlink(missing_ok=True)
    command = [str(exe), "video", str(clip), "-o", str(out), "-q", "--json", str(summary), *options]
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env)
    wall = time.perf_counter() - started
    entry = json.loads(summary.read_text())["files"][0]
    return {**entry, "process_s": round(wall, 2)}


def code_state() -> dict:
    """The commit measured, and the files of the package changed from it (read-only git calls)."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30).stdout
        except OSError:
            return ""

    changed = [line[3:] for line in git("status", "--porcelain", "--", "upscaler").splitlines() if line.strip()]
    return {"commit": git("rev-parse", "--short", "HEAD").strip(), "uncommitted": changed}


def main() -> None:
    from upscaler.sysinfo import machine_info

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=CLIP)
    parser.add_argument("--seconds", type=float, default=3.0, help="how much of the clip (default: 3)")
    parser.add_argument("--size", default="320x180", help="frames reduced to this first (default: 320x180)")
    parser.add_argument("--temporal", default="x4-temporal")
    parser.add_argument("--single", default="x4-fast")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    env = {k: v for k, v in os.environ.items() if k != "UPSCALER_CPU_PRECISION"}  # defaults: the engine chooses
    subjects = {
        f"{args.single} (defaults)": ["--model", args.single, "--engine-baseline"],
        f"{args.temporal} (defaults)": ["--model", args.temporal, "--engine-baseline"],
        f"{args.single} --precision fp32": ["--model", args.single, "--precision", "fp32", "--engine-baseline"],
    }
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="video-temporal-") as tmp:
        work = Path(tmp)
        clip = work / "clip.mkv"
        frames = cut_clip(args.source, clip, args.seconds, size)
        print(f"clip: {frames} frames of {args.source.name} at {size[0]}x{size[1]}", file=sys.stderr)
        runs: dict[str, list[dict]] = {name: [] for name in subjects}
        for r in range(args.rounds):
            for i, (name, options) in enumerate(subjects.items()):
                entry = run_video(clip, work, f"r{r}-{i}", options, env)
                runs[name].append(entry)
                print(f"round {r + 1}: {name:28s} {entry['fps']:6.2f} fps ({entry['engine']} {entry['precision']})",
                      file=sys.stderr)  # fmt: skip

    def figures(entries: list[dict]) -> dict:
        return {
            "fps": [e["fps"] for e in entries],
            "median_fps": round(statistics.median(e["fps"] for e in entries), 2),
            "engine_alone_fps": [e["engine_fps"] for e in entries],
            "engine": sorted({f"{e['engine']} {e['precision']}" for e in entries}),
            "frames": entries[0]["frames"],
            "segments": entries[0]["segments"],
            "cuts": entries[0]["cuts"],
            "process_s": [e["process_s"] for e in entries],
        }

    results = {name: figures(entries) for name, entries in runs.items()}
    temporal = results[f"{args.temporal} (defaults)"]["median_fps"]
    report = {
        "command": "python benchmarks/video_temporal.py " + " ".join(sys.argv[1:]),
        "machine": machine_info(),
        "code": code_state(),
        "load_average_1min": {"before": round(load_before[0], 2), "after": round(os.getloadavg()[0], 2)},
        "clip": {
            "source": os.path.relpath(args.source, REPO),
            "seconds": args.seconds,
            "frames": frames,
            "input_size": list(size),
            "note": "the first seconds of the 1280x720 clip, reduced to the input size with PyAV (area) before "
            "upscaling; audio copied",
        },
        "output_size": [size[0] * 4, size[1] * 4],
        "settings": "upscaler video defaults (libx264 crf 18, default preset, one encoder thread, batch 1, "
        "segments of 10 s) plus --engine-baseline; UPSCALER_CPU_PRECISION unset",
        "rounds": args.rounds,
        "order": list(subjects),
        "subjects": results,
        "ratio": {
            f"{args.temporal} / {name}": round(temporal / results[name]["median_fps"], 3)
            for name in subjects
            if not name.startswith(args.temporal)
        },
    }
    for name, r in results.items():
        print(f"{name:28s} median {r['median_fps']:6.2f} fps  {', '.join(r['engine'])}")
    for name, ratio in report["ratio"].items():
        print(f"{name}: {ratio:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
