"""CPU step time of accumulating-model variants (random weights) against x4-fast, side by side in one run.

    python benchmarks/accum_variants.py --rounds 7 --json benchmarks/results/accum-variants-x4.json

What a smaller network would buy before anyone trains one: each variant is an
``AccumSR`` with random weights (the speed of a graph does not depend on its
weights), exported as a release would (folded graph and display filters, the
unjittered one identity as x4-temporal-quality ships it), and run by the
``onnxruntime-cpu`` engine on the frames of ``temporal_speed.py`` (a real
photo panned one low-resolution pixel a frame, exact motion, Halton jitter:
the moving filter runs). Rounds are interleaved; the figure is the median of
each subject's per-round medians, with the parts of the step (the same
medians of the time spent in each) for the variants. ``filters`` is a 3x3
filter's graph, or for 1x1 filters the pass that applies them as it shows
the frame (the show itself, counted in ``fused`` otherwise, included).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

#: name -> AccumSR parameters beyond x4-temporal-quality's (``c32b2h16d3`` is its shape)
VARIANTS = {
    "c32b2h16d3": {"channels": 32, "blocks": 2, "history_channels": 16, "display": 3},
    "c24b2h16d3": {"channels": 24, "blocks": 2, "history_channels": 16, "display": 3},
    "c16b2h16d3": {"channels": 16, "blocks": 2, "history_channels": 16, "display": 3},
    "c32b1h16d3": {"channels": 32, "blocks": 1, "history_channels": 16, "display": 3},
    "c16b1h8d3": {"channels": 16, "blocks": 1, "history_channels": 8, "display": 3},
    "c16b1h8d1": {"channels": 16, "blocks": 1, "history_channels": 8, "display": 1},
    "c16b2h16d1": {"channels": 16, "blocks": 2, "history_channels": 16, "display": 1},
    "c32b1h16d1": {"channels": 32, "blocks": 1, "history_channels": 16, "display": 1},
    "c32b2h16d1": {"channels": 32, "blocks": 2, "history_channels": 16, "display": 1},
}
#: the engine's parts, timed where they are called
PARTS = ("reproject", "network", "filters", "fused")


def _export(name: str, params: dict, folder: Path) -> Path:
    """A random AccumSR of ``params`` (x4-temporal-quality's other settings) saved and exported into ``folder``."""
    import torch
    from safetensors.torch import save_file

    from export.temporal import export_temporal
    from upscaler.archs.accum import AccumSR
    from upscaler.models import get_model

    torch.manual_seed(0)
    net = AccumSR(4, cap=16.0, sigma=0.5, keep_offset=3.0, settle=True, settle_base=True, fresh_correction=True,
                  base_decay=6.0, **params)  # fmt: skip
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    net.show_as_is("unjittered")  # as x4-temporal-quality ships it
    path = folder / f"{name}.safetensors"
    meta = {"name": name, "arch": "accum", "scale": "4", "degradation": "sequence", "training": "{}",
            "params": json.dumps(net.inference_params())}  # fmt: skip
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path), metadata=meta)
    export_temporal(get_model(path), path.with_suffix(".onnx"), path.with_suffix(".folded.onnx"))
    return path


#: the parts' times of the variant now stepping (seconds), where the clocks below add them
ACTIVE: list[dict[str, float]] = []


def _clock(part: str, call):
    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            if ACTIVE:
                ACTIVE[0][part] += time.perf_counter() - start

    return timed


def _clock_parts(upscaler):
    """``upscaler``'s engine with each part's time added to the active variant's (the module functions the
    engine calls are clocked once, for all)."""
    from upscaler.runtime import accum_cpu, fold_cpu, temporal_ort_cpu

    engine = upscaler.engine
    engine._run, engine._filter = _clock("network", engine._run), _clock("filters", engine._filter)
    clocked = [(temporal_ort_cpu, "fold_reproject", "reproject"), (fold_cpu, "fold_reproject_blocks", "reproject"),
               (accum_cpu, "combine", "fused"), (accum_cpu, "show", "fused"),
               (accum_cpu, "show_filtered", "filters")]  # fmt: skip  # 1x1 filters: applied as the frame is shown
    for module, name, part in clocked:
        if not getattr(getattr(module, name), "clocked", False):
            setattr(module, name, _clock(part, getattr(module, name)))
            getattr(module, name).clocked = True
    return upscaler


def _rounds(subjects: dict, variants: set[str], frames: int, rounds: int):
    """Each subject's median frame time per round (ms), and each variant's per-frame time in each part (ms),
    over ``rounds`` interleaved rounds after one warm-up frame each."""
    from upscaler.bench.stats import in_turn

    for run in subjects.values():
        run(0)
    medians = {name: [] for name in subjects}
    parts = {name: {p: [] for p in PARTS} for name in variants}
    for turn in in_turn(list(subjects.items()), rounds):
        for name, run in turn:
            ACTIVE[:] = [dict.fromkeys(PARTS, 0.0)] if name in variants else []
            times = []
            for i in range(1, frames + 1):
                start = time.perf_counter()
                run(i)
                times.append((time.perf_counter() - start) * 1000)
            medians[name].append(float(np.median(times)))
            for part, total in ACTIVE[0].items() if ACTIVE else ():
                parts[name][part].append(total * 1000 / frames)
    ACTIVE.clear()
    return medians, parts


def _summary(medians: list[float], base: float) -> dict:
    median = float(np.median(medians))
    return {"median_ms": round(median, 2), "ratio": round(median / base, 2)}


def main() -> None:
    from upscaler import TemporalUpscaler, Upscaler
    from upscaler.sequences import jitter_sequence
    from upscaler.sysinfo import machine_info

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="320x180")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--frames", type=int, default=8, help="timed frames per subject per round")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--json")
    args = parser.parse_args()
    variants = {name: VARIANTS[name] for name in args.variants}
    w, h = (int(v) for v in args.size.lower().split("x"))
    sys.path.insert(0, str(Path(__file__).parent))
    from temporal_speed import pan_frames

    frames, motion = pan_frames(w, h, args.frames + 1)
    jitters = jitter_sequence(16)
    single = Upscaler("x4-fast", "onnxruntime-cpu", tile=0, precision="fp32")
    subjects = {"x4-fast (single frame)": lambda i: single.upscale(frames[i])}
    folder = Path(tempfile.mkdtemp(prefix="accum-variants-"))
    for name, params in variants.items():
        up = _clock_parts(TemporalUpscaler(_export(name, params, folder), "onnxruntime-cpu"))
        subjects[name] = lambda i, up=up: up.upscale(frames[i], jitters[i % 16], motion)
    medians, parts = _rounds(subjects, set(variants), args.frames, args.rounds)
    base = float(np.median(medians["x4-fast (single frame)"]))
    report = {
        "command": "python benchmarks/accum_variants.py " + " ".join(sys.argv[1:]),
        "machine": machine_info(),
        "size": [w, h],
        "rounds": args.rounds,
        "frames": args.frames,
        "variants": variants,
        "subjects": {name: _summary(m, base) for name, m in medians.items()},
    }
    for name, by_part in parts.items():
        report["subjects"][name]["parts_ms"] = {p: round(float(np.median(v)), 2) for p, v in by_part.items()}
    for name, r in report["subjects"].items():
        print(f"{name:24s} {r['median_ms']:8.2f} ms  {r['ratio']:.2f}x  {r.get('parts_ms', '')}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
