"""Sequence mode of ``upscaler bench``: temporal and single-frame models on standard rendered sequences.

Builds the subjects (bicubic and plain accumulation always, then each model:
a temporal one with the exact motion, and with ``flow`` also with motion
estimated; a single-frame one frame by frame), runs them over
``upscaler.bench.rendered.standard_sequences`` of each folder, and
makes the report (JSON-ready dict), a terminal table and markdown.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from upscaler.bench.rendered import (
    AFTER_CUT,
    KINDS,
    AccumulationSubject,
    BicubicSubject,
    NamedSequence,
    SequenceSubject,
    SingleFrameSubject,
    TemporalSubject,
    cut_frame,
    evaluate_sequences,
    iter_standard_sequences,
)
from upscaler.io import list_images

__all__ = [
    "build_sequence_subjects",
    "count_sequences",
    "format_sequence_markdown",
    "format_sequence_table",
    "models_of_one_scale",
    "run_sequence_bench",
    "sequence_note",
]


def models_of_one_scale(models: Sequence[str], mode: str) -> list:
    """The descriptors of ``models`` (names, aliases or paths; the same weights twice dropped), in order;
    ``ValueError`` when there are none or their scales differ (``mode`` names the harness mode in the
    message). A weights file whose recorded name is taken by other weights (a shipped model's earlier
    release, say) is named by its file's stem, so that each gets its own row."""
    from upscaler.models import get_model

    descriptors: list = []
    for d in (get_model(m) for m in models):
        same = next((e for e in descriptors if e.name == d.name), None)
        if same is not None and _weights_path(same) == _weights_path(d):
            continue
        if same is not None:
            d = replace(d, name=Path(_weights_path(d) or d.name).stem)
        if any(e.name == d.name for e in descriptors):
            raise ValueError(f"{mode}: two models named {d.name!r}; rename one of the weights files")
        descriptors.append(d)
    if not descriptors:
        raise ValueError("no models given")
    if len({d.scale for d in descriptors}) > 1:
        listed = ", ".join(f"{d.name} x{d.scale}" for d in descriptors)
        raise ValueError(f"{mode} compares models of one scale, got {listed}")
    return descriptors


def _weights_path(d) -> str | None:
    return str(d.weights.path) if d.weights is not None else None


def build_sequence_subjects(
    models: Sequence[str],
    *,
    backend: str = "auto",
    threads: int | None = None,
    precision: str | None = None,
    flow: bool = False,
) -> list[SequenceSubject]:
    """Bicubic, plain accumulation, then each model (names, aliases or ``.safetensors`` paths) in order.

    All models must have one scale (``ValueError`` naming them otherwise);
    ``flow`` adds each temporal model again with ``motion=None``
    (``ValueError`` when no model is temporal).
    """
    descriptors = models_of_one_scale(models, "sequence mode")
    temporal = [d for d in descriptors if d.temporal]
    if flow and not temporal:
        raise ValueError("--flow estimates motion for temporal models, and none was given")
    scale = descriptors[0].scale
    subjects: list[SequenceSubject] = [BicubicSubject(scale), AccumulationSubject(scale)]
    for d in descriptors:
        if d.temporal:
            subjects.append(TemporalSubject(d, backend, threads=threads))
            if d.depth:  # the same model told the renderer's depth
                subjects.append(TemporalSubject(d, backend, threads=threads, depth=True))
            if flow:
                subjects.append(TemporalSubject(d, backend, threads=threads, flow=True))
        else:
            subjects.append(SingleFrameSubject(d, backend, threads=threads, precision=precision))
    return subjects


def count_sequences(folder: str | Path, limit: int | None = None, kinds: Sequence[str] | None = None) -> int:
    """How many sequences ``standard_sequences`` makes of ``folder`` (without rendering them); with ``kinds``,
    one of each per image."""
    n = len(list_images(folder)[:limit])
    if kinds is not None:
        return n * len(set(kinds))
    # pan, layer, cut, still (either), slow, fade, moderate
    return n + math.ceil(n / 3) + math.ceil(n / 4) + n // 2 + n + (n + 1) // 4 + n


def _chain(folders: Sequence[str | Path], scale: int, size, frames: int, limit: int | None,
           kinds: Sequence[str] | None) -> Iterator[NamedSequence]:  # fmt: skip
    for folder in folders:
        yield from iter_standard_sequences(folder, scale, size=size, frames=frames, limit=limit, kinds=kinds)


def run_sequence_bench(
    folders: Sequence[str | Path],
    subjects: Sequence[SequenceSubject],
    *,
    size: tuple[int, int] = (96, 64),
    frames: int = 32,
    limit: int | None = None,
    warmup: int = 8,
    on_step: Callable | None = None,
    kinds: Sequence[str] | None = None,
) -> dict:
    """Every subject over the standard sequences of every folder (``kinds``: only those, of every image);
    ``evaluate_sequences``'s dict with settings."""
    scale = subjects[0].scale
    if frames <= warmup:
        raise ValueError(f"--frames ({frames}) must exceed the warm-up ({warmup}): no steady-state frame is left")
    chain = _chain(folders, scale, size, frames, limit, kinds)
    result = evaluate_sequences(subjects, chain, warmup=warmup, on_step=on_step)
    settings = {
        "folders": [str(f) for f in folders],
        "scale": scale,
        "size": f"{size[0]}x{size[1]}",
        "output": f"{size[0] * scale}x{size[1] * scale}",
        "frames": frames,
        "limit": limit,
        "kinds": list(kinds) if kinds is not None else None,
        "warmup": warmup,
        "cut_at": cut_frame(frames),
        "after_cut_frames": AFTER_CUT,
    }
    return {"settings": settings, **result}


_HEAD = ("subject", "engine", "motion", "pan PSNR", "pan SSIM", "layer PSNR", "moving PSNR", "disoccluded",
         "after cut", "before cut", "still PSNR", "unjittered still", "slow PSNR", "slow moving", "moderate PSNR",
         "grid err", "fade lag", "warp err", "ms/frame")  # fmt: skip


def _f(value, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _cells(subject: dict) -> tuple[str, ...]:
    s = subject["summary"]
    pan, layer, cut, every = s.get("pan", {}), s.get("layer", {}), s.get("cut", {}), s["all"]
    return (
        subject["name"],
        subject.get("engine") or "-",
        subject.get("motion") or "-",
        _f(pan.get("steady_psnr"), 2),
        _f(pan.get("steady_ssim"), 4),
        _f(layer.get("steady_psnr"), 2),
        _f(layer.get("dynamic_psnr"), 2),
        _f(layer.get("disoccluded_psnr"), 2),
        _f(cut.get("after_cut_psnr"), 2),
        _f(cut.get("before_cut_psnr"), 2),
        _f(s.get("still", {}).get("steady_psnr"), 2),
        _f(s.get("still-unjittered", {}).get("steady_psnr"), 2),
        _f(s.get("slow", {}).get("steady_psnr"), 2),
        _f(s.get("slow", {}).get("dynamic_psnr"), 2),
        _f(s.get("moderate", {}).get("steady_psnr"), 2),
        _f(s.get("still", {}).get("grid_error"), 2),
        _f(s.get("fade", {}).get("fade_lag"), 1),
        _f(every.get("warping_error"), 2),
        _f(every.get("median_ms"), 2),
    )


def _note(report: dict) -> str:
    st = report["settings"]
    kinds = [q["kind"] for q in report["sequences"]]
    counts = ", ".join(f"{kinds.count(k)} {k}" for k in KINDS if k in kinds)
    return (
        f"{len(kinds)} sequences ({counts}) of {st['frames']} frames, {st['size']} -> {st['output']} (x{st['scale']}), "
        f"from {', '.join(st['folders'])}. PSNR/SSIM on Y, {st['scale']} px shaved; pan/layer: mean over frames "
        f">= {st['warmup']}; moving PSNR: the moving layer's pixels only; disoccluded: the background the "
        f"layer uncovered that frame (all frames); after cut: frames {st['cut_at']} to "
        f"{st['cut_at'] + st['after_cut_frames'] - 1} (the cut is not signalled), before cut: the "
        f"{st['after_cut_frames']} frames before it; still / unjittered still: a static camera with and without "
        f"jitter, mean over frames >= {st['warmup']}; slow: a pan and a layer each at most 0.3 HR px per frame "
        f"per axis (frames >= {st['warmup']}; moving: the layer's pixels); moderate: the same at most 1.2 HR px; "
        "grid err: on flat pixels of still shots, the largest gap between the output's and the reference's mean "
        "Y by pixel phase (grey levels); fade lag: frames after a fade from black ends until the output's mean "
        "Y stays within 1 level of the reference's; warp err: mean |change of output - "
        "change of reference| after reprojection by the exact motion, grey levels, static pixels (lower is "
        "steadier); ms/frame: median step time."
    )


def format_sequence_table(report: dict) -> str:
    """A fixed-width table: one row per subject (figures averaged over the sequences of each kind)."""
    table = [_HEAD, *(_cells(s) for s in report["subjects"])]
    widths = [max(len(r[i]) for r in table) for i in range(len(_HEAD))]
    lines = ["  ".join(v.rjust(w) if i > 2 else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths))) for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_sequence_markdown(report: dict, machine: dict | None = None) -> str:
    """The table as markdown, with the machine (CPU and its flags) and what the columns mean."""
    from upscaler.bench.report import machine_line

    lines = [f"Measured on {machine_line(machine)}", ""] if machine else []
    lines += [_note(report), ""]
    lines += ["| " + " | ".join(_HEAD) + " |", "|" + "---|" * len(_HEAD)]
    lines += ["| " + " | ".join(_cells(s)) + " |" for s in report["subjects"]]
    return "\n".join(lines) + "\n"


def sequence_note(report: dict) -> str:
    """What the columns mean (printed under the terminal table)."""
    return _note(report)
