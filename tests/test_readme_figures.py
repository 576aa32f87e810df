"""A sample of the README's figures, each read from the committed JSON it cites: the two cannot drift apart.

Each check names the README line's words around the figure, the JSON file and the path to the value in
it, and how the README prints it. A figure edited in one place and not the other fails here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"


def _value(data, path: str):
    """The value at ``path``: keys and list indices joined by dots (a key may hold dots: a weights file)."""
    parts = path.split(".")
    while parts:
        if isinstance(data, list):
            data = data[int(parts.pop(0))]
            continue
        n = next(n for n in range(1, len(parts) + 1) if ".".join(parts[:n]) in data)
        data, parts = data[".".join(parts[:n])], parts[n:]
    return data


X2_HELD_OUT = "x2-temporal (accumulating) over 78 rendered sequences"
X2_CLIP = "temporal stability on the real clip, x2-temporal (accumulating)"
DISPLAY_SPEED = "| the same with the display filters (Zen 4"
FUSED_SPEED = "| the same after the CPU engine fused the accumulating step"
BEFORE_X4 = "before-fused/x4-temporal"  # temporal_speed.py --baseline runs/before-fused/x4-temporal.safetensors
X4F, X2F = "temporal-speed-x4-fused.json", "temporal-speed-x2-fused.json"
TAIL_SPEED = "| the same after the CPU graph stopped at the network's convolutions"
X4T, LITE = "temporal-speed-x4-tail.json", "x4-lite-d1/x4-lite-d1"  # --baseline runs/x4-lite-d1/x4-lite-d1.safetensors
SPLIT_SPEED = "| the same after the CPU engine kept an accumulating model's colour and weight interleaved"
X4I, X2I = "temporal-speed-x4-interleaved.json", "temporal-speed-x2-interleaved.json"
DISTIL = "x4-distil-d1/x4-lite-distil-d1"  # --baseline runs/x4-distil-d1/x4-lite-distil-d1.safetensors
DISTIL_HELD_OUT = "| x4-temporal-lite (`x4-lite-distil-d1` in the JSON, the same"
LITE_SEQ = "sequences-x4-lite-mcmaster.json"
X4_HELD_OUT = "x4-temporal over 78 rendered sequences made from"
LITE_CLIP = "| temporal stability, x4-temporal-lite"
LITE_SPEED, X4L = "| x4-temporal-lite as released, a second run", "temporal-speed-x4-lite.json"
X2_SEQ, X4_SEQ = "sequences-x2-display-mcmaster.json", "sequences-x4-display-mcmaster.json"
KINDS_HELD_OUT, KINDS_SEQ = (
    "| x4-temporal and x4-temporal-lite over a still and a slow shot",
    "sequences-x4-still-slow-mcmaster.json",
)
KINDS_TUNING, KINDS_BSD = "| the same kinds, cuts and fades over 24 images", "sequences-x4-kinds-bsd100.json"
GROWN_SPEED, X4G = "| the grown x4-temporal-lite's step", "temporal-speed-x4-lite2.json"
GROWN = (
    "runs/x4-lite2-d1/x4-lite2-d1.safetensors"  # temporal_speed.py --temporal runs/x4-lite2-d1/x4-lite2-d1.safetensors
)
CLIP_SEQ, CLIP_HELD, CLIP_BSD = (
    "| x4-temporal-lite with the history's range test",
    "sequences-x4-lite-clip-mcmaster.json",
    "sequences-x4-lite-clip-bsd100.json",
)
CLIP_SPEED, X4C = "| its step, x4-temporal-lite in the same rounds", "temporal-speed-x4-lite-clip.json"
CLIP = "runs/x4-lite-clip-d1/x4-lite-clip-d1.safetensors"  # temporal_speed.py --temporal (this path)
D3_SEQ, D3_HELD = "| x4-temporal-lite's network with 3x3 display filters", "sequences-x4-lite-d3-mcmaster.json"
D3_SPEED, X4D3, X4D3B = (
    "| its step in two runs, x4-temporal-lite",
    "temporal-speed-x4-lite-d3.json",
    "temporal-speed-x4-lite-d3-second.json",
)
D3 = "runs/x4-lite-distil-d3/x4-lite-distil-d3.safetensors"  # temporal_speed.py --temporal (this path)
LUMA_SEQ, LUMA_HELD = "| x4-temporal-lite as released with a 3x3 display filter", "sequences-x4-lite-luma-mcmaster.json"
LUMA_KINDS, LUMA_KINDS_SEQ = (
    "| the same over a still and a slow shot of every one of the 18 held-out images, beside",
    "sequences-x4-lite-luma-still-slow-mcmaster.json",
)
LUMA_CHROMA, CHROMA = "| colour over the same still and slow shots", "chroma-x4-lite-mcmaster.json"
BEFORE_FILE = "runs/before/x4-temporal-lite-before.safetensors"  # chroma_psnr.py -m (this path)
LUMA_SPEED, X4LU, X4LUB = (
    "| its step in two runs of 41 rounds, the release before",
    "temporal-speed-x4-lite-luma.json",
    "temporal-speed-x4-lite-luma-second.json",
)
OLD = "old-lite/x4-temporal-lite"  # temporal_speed.py --baseline runs/old-lite/x4-temporal-lite.safetensors
FITTED_SPEED, X4FC, X4FCB = (
    "| the form with fitted chroma (1x1 filters",
    "temporal-speed-x4-lite-detail.json",
    "temporal-speed-x4-lite-detail-second.json",
)
SETTLE, UNSETTLED, SWAPPED = (
    "| the harness's turn order before `--settle`",
    "temporal-speed-x4-lite-unsettled.json",
    "temporal-speed-x4-lite-swapped.json",
)
SETTLED_SPEED, X4S = "| x4-temporal's step with the harness settled", "temporal-speed-x4-settled.json"
VIDEO_X4 = "| x4-video against x4-fast on compressed images"
VIDEO_CLIP = "| x4-video against x4-fast on the real clip"
VIDEO_X2 = "| x2-video against x2-fast: Set5"
VIDEO_SPEED = "| the video models' network time"
VQ, VQ_AUTO = "| x4-video-quality against x4-fast, x4-quality", "| x4-video-quality with `--source auto`"
VQ_CLIP = "| x4-video-quality against x4-video and x4-fast on the real clip"
VQ_SPEED, VQ_JSON, VQ_AUTO_JSON = (
    "| x4-video-quality's network time",
    "compressed-x4-video-quality.json",
    ("compressed-x4-video-quality-auto.json"),
)
AUTO_CLEAN = "| x4-video and x2-video with `--source auto` (the default) on clean input"
AUTO_CLIP = "| x4-video with `--source auto` on the real clip"
GRID = "| the JPEG grid alone (`upscaler.sources.jpeg_grid`"
REFIT, REFIT_SEQ = "| x4-temporal-lite with its display filters fitted again", "sequences-x4-lite-refit-mcmaster.json"
REFIT_TUNING = "| the same refit over 24 images of the tuning set"
HC0, HC0_SEQ = "| x4-temporal-lite dropping the network's correction", "sequences-x4-lite-hc0-mcmaster.json"
HC0_SPEED, HC0_RUN = "| x4-temporal-lite's step as released now", "temporal-speed-x4-lite-hc0.json"
HC0_KBD, HC0_NET = "keep-by-detail-hc0-bsd100.json", "mean.runs/hc/x4-temporal-lite-hc0.safetensors"

BLOCK_FOLD, FOLD4, FOLD2 = (
    "| the accumulating engine's reprojection a block",
    "fold-speed-x4.json",
    "fold-speed-x2.json",
)
BLOCK_STEP, STEP_LITE, STEP_X4, STEP_X2 = (
    "| the whole step with each reprojection in turn",
    "fold-step-x4-lite.json",
    "fold-step-x4.json",
    "fold-step-x2.json",
)
BLOCK_HARNESS, X4B, X4R, X2B = (
    "| the speed harness after it (`temporal_speed.py`",
    "temporal-speed-x4-blocks.json",
    "temporal-speed-x4-remap.json",
    "temporal-speed-x2-blocks.json",
)
BANDED, X4BD, X2BD = (
    "| the same engine, each 3x3 display graph run over the rows",
    "temporal-speed-x4-banded.json",
    "temporal-speed-x2-banded.json",
)
KEEP, KB, KM = "| where still shots are won and lost", "keep-by-detail-bsd100.json", "keep-by-detail-mcmaster.json"
HOLD, HOLD_X4 = "| the still-camera hold (`upscaler/runtime/hold.py`", "sequences-x4-hold-mcmaster.json"
HOLD_2, HOLD_X2 = "| the same hold on x2-temporal", "sequences-x2-hold-mcmaster.json"
HOLD_BSD, HOLD_B = "| the same hold over 24 images of the tuning set", "sequences-x4-hold-bsd100.json"
HOLD_KEEP, HOLD_KB = "| the hold by region", "keep-by-detail-hold-bsd100.json"
HOLD_SPEED, HOLD_S = "| x4-temporal-lite's step with the hold", "temporal-speed-x4-lite-hold.json"
X2_KINDS, X2_KINDS_SEQ = "| x2-temporal over a still and a slow shot", "sequences-x2-still-slow-mcmaster.json"

#: (words on the README line, JSON file, path in it, format the README prints the value in)
#: issue 25's status table, the x4 temporal models under their current names (2026-12-07, after the rename)
RN, RN_SS = "sequences-x4-renamed-mcmaster.json", "sequences-x4-renamed-still-slow-mcmaster.json"
RN_CLIP, RN_SINTEL, RN_SPEED = (
    "stability-clip-x4-renamed.json",
    "stability-sintel-x4-renamed.json",
    "temporal-speed-x4-renamed.json",
)
RN_ROWS = {
    "still": "| still shots, plain accumulation + 0.5 dB (the five standard",
    "still18": "| still shots of all 18 images",
    "slow": "| slow shots, plain accumulation + 0.5 dB (standard",
    "slow18": "| slow shots of all 18 images",
    "moderate": "| moderate speeds, plain accumulation + 1.0",
    "layer": "| the moving layer, at least bicubic",
    "cut": "| three frames after an unsignalled cut",
    "depth": "| depth, +0.3 dB on what the layer uncovers",
    "pan": "| fast pans, where they were",
    "grid": "| flat regions, per-phase grid",
    "fade": "| a fade reaches the source level",
    "clip": "| video warping error at most 0.7x",
    "sintel": "| the same on a clip made from CC BY Sintel",
    "step": "| the CPU step at most 1.5x",
    "step2": "| the same with half the frame still",
}
LIGHT_ROW = "| the video models on light JPEGs (quality 90 / 93 / 95)"
LIGHT_X2, LIGHT_X2_FORCED = "compressed-x2-light-jpeg.json", "compressed-x2-light-jpeg-forced.json"
LIGHT_JPEG, LIGHT_FORCED = "compressed-x4-light-jpeg.json", "compressed-x4-light-jpeg-forced.json"
VIDEO_NOW = "| `upscaler video` frames/s, x4-temporal as named since 2026-12-07"
VIDEO_NOW_JSON = "video-temporal-x4-now.json"
STREAM_NOW = "stream-temporal-x4-now.json"
NOHOLD = "sequences-x4-nohold-now-mcmaster.json"  # x4-temporal with and without its hold (runs/nohold2)
RN_DETAIL, RN_DETAIL2 = "video x4-temporal keeps more detail than x4-fast (", "real clip, 4.66 against 4.14 on Sintel"


def _status_row(row: str, file: str, field: str, reference: int, shown: str) -> list[tuple]:
    """One row of issue 25's status table: the reference's figure (subject ``reference``, as ``shown``) and
    both models' (subjects 2 and 4: x4-temporal, x4-temporal-quality) in their own cells."""
    cells = [(RN_ROWS[row], file, f"subjects.{s}.summary.{field}", "| {:.2f} |") for s in (2, 4)]
    return [(RN_ROWS[row], file, f"subjects.{reference}.summary.{field}", shown), *cells]


FIGURES = [
    ("all rounds together the service served", "service-cpu-x4-fast.json", "http.0.fps", "{:.1f} / "),
    ("all rounds together the service served", "service-cpu-x4-fast.json", "http.1.fps", "/ {:.1f} / "),
    ("all rounds together the service served", "service-cpu-x4-fast.json", "direct.fps", "against {:.1f} in-process"),
    ("the median of 5 per-round ratios", "service-cpu-x4-fast.json", "http.0.throughput_ratio", "is {:.2f}x"),
    ("median latency 51.07 ms", "service-cpu-x4-fast.json", "http.0.median_ms", "latency {:.2f} ms"),
    ("median latency 51.07 ms", "service-cpu-x4-fast.json", "direct.median_ms", "engine's {:.2f} ms"),
    ("after streams began sharing", "stream-temporal-x4-zen3.json", "serving_median_ms", "serving time {:.2f} ms"),
    ("after streams began sharing", "stream-temporal-x4-zen3.json", "transport_floor_median_ms", "floor {:.2f} ms"),
    ("after streams began sharing", "stream-temporal-x4-zen3.json", "memory.per_stream_mb", "; {:.1f} MB per open"),
    (
        "on Ray Serve replicas (`upscaler serve",
        "ray-serve-x4-fast.json",
        "layouts.1 replica.rows.0.fps_ratio",
        "1 replica: {:.2f}x",
    ),
    (
        "on Ray Serve replicas (`upscaler serve",
        "ray-serve-x4-fast.json",
        "layouts.1 replica.rows.0.median_overhead_ms",
        "latency +{:.1f} ms",
    ),
    (
        "on Ray Serve replicas (`upscaler serve",
        "ray-serve-x4-fast.json",
        "layouts.2 replicas.rows.1.fps_ratio",
        "{:.2f}x at 4;",
    ),
    (
        "on Ray Serve replicas (`upscaler serve",
        "ray-serve-x4-fast.json",
        "layouts.2 replicas.recovery_median_s",
        "replaced in {:.2f} s",
    ),
    ("reached Set5 31.60 / BSD100", "x4-quality-gpu-candidate-eval.json", "datasets.0.psnr", "Set5 {:.2f} /"),
    ("reached Set5 31.60 / BSD100", "x4-quality-gpu-candidate-eval.json", "datasets.1.psnr", "BSD100 {:.2f} dB"),
    (
        "x4-temporal over 78 rendered sequences made from",
        X4_SEQ,
        "subjects.2.summary.still.steady_psnr",
        "still shots {:.2f} dB",
    ),
    (
        "x4-temporal over 78 rendered sequences made from",
        X4_SEQ,
        "subjects.1.summary.still.steady_psnr",
        "plain accumulation's {:.2f} (",
    ),
    (
        "x4-temporal over 78 rendered sequences made from",
        X4_SEQ,
        "subjects.2.summary.moderate.steady_psnr",
        "(at most 1.2) {:.2f}",
    ),
    (
        "what the layer uncovers, flat",
        X4_SEQ,
        "subjects.3.summary.layer.disoccluded_psnr",
        "background {:.2f} with depth",
    ),
    (
        "`benchmarks/results/stability-sintel-x4.json`",
        "stability-sintel-x4.json",
        "subjects.0.ratio_to_reference",
        "| {:.2f}x (",
    ),
    ("5.52x x4-fast's time", "two-step-x4.json", "time.subjects.x2-fast twice.ratio", "{:.2f}x x4-fast's"),
    ("5.52x x4-fast's time", "two-step-x4.json", "time.subjects.x4-quality.ratio", "at {:.2f}x;"),
    ("5.52x x4-fast's time", "two-step-x4.json", "quality.x4-quality.Set5.psnr", "x4-quality's {:.2f} dB"),
    ("| **x4-temporal** (estimated motion) |", "stability-clip-x4-renamed.json", "subjects.0.mean", "| {:.2f} |"),
    ("| **x4-temporal** (estimated motion) |", "stability-clip-x4-renamed.json", "subjects.0.detail", "| {:.2f} |"),
    ("| **x4-temporal** (estimated motion) |", "stability-clip-x4-renamed.json", "subjects.0.still", "| {:.2f} |"),
    ("| x4-temporal-quality (estimated motion) |", "stability-clip-x4-renamed.json", "subjects.1.detail", "| {:.2f} |"),
    (
        "rendered alley, 60 frames) x4-temporal's warping error is",
        RN_SINTEL,
        "subjects.0.ratio_to_reference",
        "{:.2f}x",
    ),
    (
        "`benchmarks/results/temporal-speed-x4-accum.json`",
        "temporal-speed-x4-accum.json",
        "subjects.x4-temporal (exact motion).ratio",
        "x4-temporal {:.2f}x x4-fast's time",
    ),
    (X2_HELD_OUT, X2_SEQ, "subjects.2.summary.still.steady_psnr", "still shots {:.2f} dB"),
    (X2_HELD_OUT, X2_SEQ, "subjects.1.summary.still.steady_psnr", "accumulation's {:.2f} ("),
    (X2_HELD_OUT, X2_SEQ, "subjects.2.summary.slow.steady_psnr", "slow {:.2f} against"),
    (X2_HELD_OUT, X2_SEQ, "subjects.1.summary.slow.steady_psnr", "against {:.2f} (34"),
    (X2_HELD_OUT, X2_SEQ, "subjects.4.summary.still.steady_psnr", "46.64 ({:.2f})"),
    (X2_HELD_OUT, X2_SEQ, "subjects.2.summary.still-unjittered.steady_psnr", "without* jitter {:.2f} against"),
    (
        "`benchmarks/results/temporal-speed-x2-accum.json`",
        "temporal-speed-x2-accum.json",
        "subjects.x2-temporal (exact motion).ratio",
        "x2-temporal {:.2f}x x2-fast's time",
    ),
    (VIDEO_X4, "compressed-x4.json", "rows.20.psnr", "JPEG-40 {:.2f} /"),
    (VIDEO_X4, "compressed-x4.json", "rows.2.psnr", "against {:.2f} / 24.67"),
    (VIDEO_X4, "compressed-x4.json", "rows.22.psnr", "(keyframe) {:.2f} /"),
    (VIDEO_X4, "compressed-x4.json", "rows.18.psnr", "clean {:.2f} /"),
    (VIDEO_X4, "compressed-x4.json", "rows.0.psnr", "against {:.2f} / 27.07"),
    (VIDEO_CLIP, "compressed-clip-x4.json", "rows.6.psnr", "/ {:.2f} / 28.62"),
    (VIDEO_CLIP, "compressed-clip-x4.json", "rows.2.psnr", "/ {:.2f} / 28.09"),
    (VIDEO_CLIP, "compressed-clip-x4.json", "rows.4.psnr", "uncompressed {:.2f} against"),
    (VIDEO_X2, "compressed-x2.json", "rows.14.psnr", "JPEG-40 {:.2f} /"),
    (VIDEO_X2, "compressed-x2.json", "rows.12.psnr", "clean {:.2f} /"),
    (VIDEO_X2, "compressed-clip-x2.json", "rows.6.psnr", "CRF 28 {:.2f} against"),
    (REFIT, REFIT_SEQ, "subjects.2.summary.still.steady_psnr", "still shots {:.2f} dB (before"),
    (REFIT, REFIT_SEQ, "subjects.4.summary.still.steady_psnr", "(before {:.2f}; plain"),
    (REFIT, REFIT_SEQ, "subjects.1.summary.still.steady_psnr", "accumulation {:.2f})"),
    (REFIT, REFIT_SEQ, "subjects.2.summary.still.grid_error", "grid {:.2f} grey"),
    (REFIT, REFIT_SEQ, "subjects.2.summary.fade.fade_lag", "settle in {:.2f} frames"),
    (REFIT_TUNING, "sequences-x4-lite-refit-bsd100.json", "subjects.2.summary.still.steady_psnr", "shots {:.2f} dB"),
    (REFIT_TUNING, "sequences-x4-lite-refit-bsd100.json", "subjects.4.summary.still.steady_psnr", "(before {:.2f};"),
    (REFIT_TUNING, "keep-by-detail-refit-bsd100.json", "mean.x4-temporal-lite.flat_psnr", "flat regions {:.2f} dB"),
    (REFIT_TUNING, "keep-by-detail-refit-mcmaster.json", "mean.x4-temporal-lite.flat_psnr", "and {:.2f} held out"),
    (REFIT_TUNING, "keep-by-detail-refit-mcmaster.json", "mean.x4-temporal-lite.detail_psnr", "31.54 and {:.2f} ("),
    (HC0, HC0_SEQ, "subjects.4.summary.still.steady_psnr", "still shots {:.2f} dB (42.56"),
    (HC0, HC0_SEQ, "subjects.4.summary.still.grid_error", "grid {:.2f} grey levels (0.18)"),
    (HC0, HC0_SEQ, "subjects.4.summary.fade.fade_lag", "fades {:.2f} frames"),
    (HC0, "keep-by-detail-hc0-mcmaster.json", "mean.x4-temporal-lite.flat_psnr", "flat regions {:.2f} dB (46.75"),
    (HC0, "sequences-x4-lite-hc0-bsd100.json", "subjects.4.summary.still.steady_psnr", "still shots {:.2f} (37.54)"),
    (HC0, HC0_KBD, f"{HC0_NET}.flat_psnr", "flat regions {:.2f} (43.53)"),
    (HC0, HC0_KBD, f"{HC0_NET}.detail_psnr", "detail {:.2f} (31.54)"),
    (HC0, HC0_KBD, "mean.runs/hc/x4-temporal-hc0.safetensors.detail_psnr", "detail regions {:.2f} against 31.88"),
    (HC0_SPEED, HC0_RUN, "subjects.x4-temporal-lite (jittered).ratio", "{:.2f}x x4-fast's time jittered"),
    (HC0_SPEED, HC0_RUN, "subjects.x4-temporal-lite (jittered, half still).ratio", "{:.2f}x with half"),
    (HC0_SPEED, HC0_RUN, "subjects.x4-temporal-lite (exact motion).ratio", "{:.2f}x with exact motion"),
    (HC0_SPEED, HC0_RUN, "subjects.x4-fast (single frame).median_ms", "x4-fast {:.2f} ms"),
    (AUTO_CLEAN, "compressed-x4-auto.json", "rows.6.psnr", "x4: {:.2f} / 27.06"),
    (AUTO_CLEAN, "compressed-x4-auto.json", "rows.7.psnr", "/ {:.2f} dB against"),
    (AUTO_CLEAN, "compressed-x4-auto.json", "rows.1.psnr", "against 30.75 / {:.2f} (x4-fast"),
    (AUTO_CLEAN, "compressed-x4-auto.json", "rows.7.models_run.x4-fast", "and {} of 100 images"),
    (AUTO_CLEAN, "compressed-x2-auto.json", "rows.7.psnr", "x2: 37.23 / {:.2f} against"),
    (AUTO_CLIP, "compressed-clip-x4-auto.json", "rows.4.psnr", "uncompressed {:.2f} dB"),
    (AUTO_CLIP, "compressed-clip-x4-auto.json", "rows.0.psnr", "x4-fast's {:.2f} (x4-video"),
    (GRID, "source-detection.json", "rows.30.judged_compressed", "at x4 {} of the images"),
    (GRID, "source-detection.json", "rows.38.judged_compressed", "0.22-{} of BSD100's"),
    (VIDEO_SPEED, "speed-video-models.json", "rows.2.network.p50_ms", "x4-video {:.2f} ms"),
    (VQ, VQ_JSON, "rows.20.psnr", "JPEG-40 {:.2f} /"),
    (VQ, VQ_JSON, "rows.21.psnr", "/ {:.2f} dB against x4-fast's"),
    (VQ, VQ_JSON, "rows.2.psnr", "x4-fast's {:.2f} / 24.67"),
    (VQ, VQ_JSON, "rows.22.psnr", "(keyframe) {:.2f} /"),
    (VQ, VQ_JSON, "rows.18.psnr", "itself, {:.2f} /"),
    (VQ, VQ_JSON, "rows.8.psnr", "x4-quality's {:.2f} / 24.62"),
    (VQ_CLIP, "compressed-clip-x4-video-quality.json", "rows.9.psnr", "33: {:.2f} /"),
    (VQ_CLIP, "compressed-clip-x4-video-quality.json", "rows.7.psnr", "/ 30.52 / {:.2f} and"),
    (VQ_CLIP, "compressed-clip-x4-video-quality.json", "rows.8.psnr", "uncompressed {:.2f} against"),
    (VQ_AUTO, VQ_AUTO_JSON, "rows.9.psnr", "/ {:.2f} dB against x4-quality's"),
    (VQ_AUTO, VQ_AUTO_JSON, "rows.9.models_run.x4-quality", "and {} of 100 images"),
    (VQ_AUTO, VQ_AUTO_JSON, "rows.12.psnr", "itself, {:.2f} /"),
    (VQ_SPEED, "speed-x4-video-quality.json", "rows.6.network.p50_ms", "| {:.2f} ms against"),
    (VQ_SPEED, "speed-x4-video-quality.json", "rows.7.network.p50_ms", "; {:.2f} against"),
    (VQ_SPEED, "speed-x4-video-quality.json", "rows.0.network.p50_ms", "and {:.2f} in FP32"),
    (VIDEO_SPEED, "speed-video-models.json", "rows.0.network.p50_ms", "x4-fast's {:.2f} in FP32"),
    (VIDEO_SPEED, "speed-video-models.json", "rows.3.network.p50_ms", "{:.2f} against 14.84 in INT8"),
    (
        DISPLAY_SPEED,
        "temporal-speed-x4-display.json",
        "subjects.x4-temporal (exact motion).ratio",
        "x4-temporal {:.2f}x",
    ),
    (
        DISPLAY_SPEED,
        "temporal-speed-x2-display.json",
        "subjects.x2-temporal (exact motion).ratio",
        "x2-temporal {:.2f}x",
    ),
    (FUSED_SPEED, X4F, "subjects.x4-temporal (exact motion).ratio", "x4-temporal {:.2f}x"),
    (FUSED_SPEED, X4F, "subjects.x4-temporal (jittered).ratio", "`motion=None`, {:.2f}x"),
    (FUSED_SPEED, X4F, f"subjects.{BEFORE_X4} (exact motion).ratio", "ms; {:.2f}x before"),
    (FUSED_SPEED, X4F, f"subjects.{BEFORE_X4} (jittered).ratio", "jittered ({:.2f}x"),
    (FUSED_SPEED, X2F, "subjects.x2-temporal (exact motion).ratio", "x2-temporal {:.2f}x"),
    (FUSED_SPEED, X2F, "subjects.x2-temporal (jittered).ratio", "`motion=None`, {:.2f}x jittered ("),
    (TAIL_SPEED, X4T, "subjects.x4-temporal (exact motion).ratio", "x4-temporal {:.2f}x"),
    (TAIL_SPEED, X4T, "subjects.x4-temporal (jittered).ratio", "ms), {:.2f}x jittered"),
    (TAIL_SPEED, X4T, f"subjects.{LITE} (exact motion).ratio", "the candidate {:.2f}x exact"),
    (TAIL_SPEED, X4T, f"subjects.{LITE} (jittered).ratio", "exact motion, {:.2f}x jittered"),
    (TAIL_SPEED, "accum-variants-x4-tail.json", "subjects.c32b2h16d3.ratio", "x4-temporal's shape {:.2f}x"),
    (TAIL_SPEED, "accum-variants-x4-tail.json", "subjects.c16b1h8d1.ratio", "the candidate's {:.2f}x"),
    (SPLIT_SPEED, X4I, "subjects.x4-temporal (exact motion).ratio", "x4-temporal {:.2f}x"),
    (SPLIT_SPEED, X4I, "subjects.x4-temporal (jittered).ratio", "`motion=None`, {:.2f}x jittered"),
    (SPLIT_SPEED, X4I, f"subjects.{DISTIL} (exact motion).ratio", "candidate {:.2f}x with exact"),
    (SPLIT_SPEED, X4I, f"subjects.{DISTIL} (jittered).ratio", "exact motion, {:.2f}x jittered;"),
    (SPLIT_SPEED, X2I, "subjects.x2-temporal (exact motion).ratio", "(another run) {:.2f}x x2-fast's"),
    (SPLIT_SPEED, X2I, "subjects.x2-temporal (jittered).ratio", "ms), {:.2f}x jittered |"),
    (DISTIL_HELD_OUT, LITE_SEQ, "subjects.4.summary.still.steady_psnr", "still shots {:.2f} dB"),
    (DISTIL_HELD_OUT, LITE_SEQ, "subjects.1.summary.still.steady_psnr", "accumulation's {:.2f} ("),
    (DISTIL_HELD_OUT, LITE_SEQ, "subjects.6.summary.still.steady_psnr", "before distillation {:.2f};"),
    (DISTIL_HELD_OUT, LITE_SEQ, "subjects.2.summary.still.steady_psnr", "x4-temporal {:.2f})"),
    (DISTIL_HELD_OUT, LITE_SEQ, "subjects.4.summary.slow.steady_psnr", "slow {:.2f} against"),
    (DISTIL_HELD_OUT, LITE_SEQ, "subjects.4.summary.moderate.steady_psnr", "moderate {:.2f} against"),
    (DISTIL_HELD_OUT, LITE_SEQ, "subjects.4.summary.pan.steady_psnr", "fast pans {:.2f} against"),
    (DISTIL_HELD_OUT, LITE_SEQ, "subjects.2.summary.pan.steady_psnr", "x4-temporal's {:.2f} and"),
    (LITE_SPEED, X4L, "subjects.x4-temporal-lite (exact motion).ratio", "x4-temporal-lite {:.2f}x"),
    (LITE_SPEED, X4L, "subjects.x4-temporal-lite (jittered).ratio", "`motion=None`, {:.2f}x jittered"),
    (LITE_SPEED, X4L, "subjects.weights/x4-temporal (jittered).ratio", "x4-temporal 1.73x, {:.2f}x jittered"),
    (LITE_CLIP, "stability-clip-x4-lite.json", "subjects.0.ratio_to_reference", "real clip {:.2f}x"),
    (LITE_CLIP, "stability-clip-x4-lite.json", "subjects.0.detail", "detail than either ({:.2f} against"),
    (LITE_CLIP, "stability-sintel-x4-lite.json", "subjects.0.ratio_to_reference", "Sintel {:.2f}x"),
    (LITE_CLIP, "stability-sintel-x4-lite.json", "subjects.0.detail", "detail {:.2f} against 4.14"),
    (X4_HELD_OUT, X4_SEQ, "subjects.4.summary.still.steady_psnr", "41.64 ({:.2f})"),
    (KINDS_HELD_OUT, KINDS_SEQ, "subjects.2.summary.still.steady_psnr", "still shots: x4-temporal {:.2f} dB"),
    (KINDS_HELD_OUT, KINDS_SEQ, "subjects.4.summary.still.steady_psnr", "x4-temporal-lite {:.2f}, plain"),
    (KINDS_HELD_OUT, KINDS_SEQ, "subjects.1.summary.still.steady_psnr", "accumulation {:.2f}; slow"),
    (
        KINDS_HELD_OUT,
        KINDS_SEQ,
        "subjects.4.summary.slow.steady_psnr",
        "x4-temporal-lite {:.2f}, plain accumulation 31",
    ),
    (KINDS_HELD_OUT, KINDS_SEQ, "subjects.1.summary.slow.steady_psnr", "plain accumulation {:.2f} |"),
    (KINDS_TUNING, KINDS_BSD, "subjects.10.summary.still.steady_psnr", "still shots: x4-temporal {:.2f} dB"),
    (KINDS_TUNING, KINDS_BSD, "subjects.6.summary.still.steady_psnr", "x4-temporal-lite {:.2f}, plain"),
    (KINDS_TUNING, KINDS_BSD, "subjects.1.summary.still.steady_psnr", "plain accumulation {:.2f};"),
    (KINDS_TUNING, KINDS_BSD, "subjects.10.summary.cut.after_cut_psnr", "after a cut: x4-temporal {:.2f}"),
    (KINDS_TUNING, KINDS_BSD, "subjects.6.summary.cut.after_cut_psnr", "x4-temporal-lite {:.2f}, bicubic"),
    (GROWN_SPEED, X4G, f"subjects.{GROWN} (exact motion).ratio", "the grown network {:.2f}x"),
    (GROWN_SPEED, X4G, f"subjects.{GROWN} (jittered).ratio", "exact motion, {:.2f}x jittered;"),
    (GROWN_SPEED, X4G, "subjects.weights/x4-temporal-lite (jittered).ratio", "1.33x, {:.2f}x jittered |"),
    (CLIP_SEQ, CLIP_HELD, "subjects.2.summary.still.steady_psnr", "held-out still shots {:.2f} dB"),
    (CLIP_SEQ, CLIP_HELD, "subjects.2.summary.slow.steady_psnr", "slow {:.2f}; tuning"),
    (CLIP_SEQ, CLIP_BSD, "subjects.2.summary.still.steady_psnr", "tuning set still shots {:.2f} against"),
    (CLIP_SEQ, CLIP_BSD, "subjects.4.summary.still.steady_psnr", "the lite's {:.2f} in the same run"),
    (CLIP_SEQ, CLIP_BSD, "subjects.2.summary.cut.after_cut_psnr", "after a cut {:.2f} against"),
    (CLIP_SEQ, CLIP_BSD, "subjects.4.summary.cut.after_cut_psnr", "against {:.2f} |"),
    (CLIP_SPEED, X4C, f"subjects.{CLIP} (exact motion).ratio", "with the range test {:.2f}x"),
    (CLIP_SPEED, X4C, f"subjects.{CLIP} (jittered).ratio", "exact motion, {:.2f}x jittered;"),
    (CLIP_SPEED, X4C, "subjects.weights/x4-temporal-lite (exact motion).ratio", "x4-temporal-lite {:.2f}x,"),
    (CLIP_SPEED, X4C, "subjects.weights/x4-temporal-lite (jittered).ratio", "1.27x, {:.2f}x jittered |"),
    (D3_SEQ, D3_HELD, "subjects.2.summary.still.steady_psnr", "still shots {:.2f} dB (plain"),
    (D3_SEQ, D3_HELD, "subjects.1.summary.still.steady_psnr", "plain accumulation {:.2f}: +0.90"),
    (D3_SEQ, D3_HELD, "subjects.2.summary.slow.steady_psnr", "slow {:.2f} |"),
    (D3_SPEED, X4D3, f"subjects.{D3} (jittered).ratio", "jittered {:.2f}x x4-fast's time and"),
    (D3_SPEED, X4D3B, f"subjects.{D3} (jittered).ratio", "time and {:.2f}x (x4-temporal-lite"),
    (D3_SPEED, X4D3, "subjects.weights/x4-temporal-lite (jittered).ratio", "(x4-temporal-lite {:.2f}x and"),
    (D3_SPEED, X4D3B, "subjects.weights/x4-temporal-lite (jittered).ratio", "and {:.2f}x), exact"),
    (D3_SPEED, X4D3, f"subjects.{D3} (exact motion).ratio", "exact motion {:.2f}x and"),
    (D3_SPEED, X4D3B, f"subjects.{D3} (exact motion).ratio", "and {:.2f}x, half"),
    (D3_SPEED, X4D3, f"subjects.{D3} (jittered, half still).ratio", "still {:.2f}x and"),
    (D3_SPEED, X4D3B, f"subjects.{D3} (jittered, half still).ratio", "and {:.2f}x |"),
    (LUMA_SEQ, LUMA_HELD, "subjects.2.summary.still.steady_psnr", "still shots {:.2f} dB against"),
    (LUMA_SEQ, LUMA_HELD, "subjects.1.summary.still.steady_psnr", "accumulation's {:.2f} (the release"),
    (LUMA_SEQ, LUMA_HELD, "subjects.4.summary.still.steady_psnr", "(the release before {:.2f}); slow"),
    (LUMA_SEQ, LUMA_HELD, "subjects.2.summary.slow.steady_psnr", "slow {:.2f} against"),
    (LUMA_SEQ, LUMA_HELD, "subjects.2.summary.moderate.steady_psnr", "moderate {:.2f} against"),
    (LUMA_SEQ, LUMA_HELD, "subjects.2.summary.pan.steady_psnr", "fast pans {:.2f} ("),
    (LUMA_SEQ, LUMA_HELD, "subjects.2.summary.layer.dynamic_psnr", "the moving layer {:.2f} against"),
    (LUMA_SEQ, LUMA_HELD, "subjects.2.summary.cut.after_cut_psnr", "after a cut {:.2f} against"),
    (LUMA_SEQ, LUMA_HELD, "subjects.3.summary.layer.disoccluded_psnr", "uncovers {:.2f} with depth"),
    (LUMA_SEQ, LUMA_HELD, "subjects.2.summary.still.grid_error", "grid {:.2f} grey levels"),
    (LUMA_SEQ, LUMA_HELD, "subjects.2.summary.fade.fade_lag", "settle in {:.1f} frames"),
    (LUMA_KINDS, LUMA_KINDS_SEQ, "subjects.2.summary.still.steady_psnr", "still shots {:.2f} dB against"),
    (LUMA_KINDS, LUMA_KINDS_SEQ, "subjects.1.summary.still.steady_psnr", "accumulation's {:.2f} (the"),
    (LUMA_KINDS, LUMA_KINDS_SEQ, "subjects.4.summary.still.steady_psnr", "form {:.2f}, the release"),
    (LUMA_KINDS, LUMA_KINDS_SEQ, "subjects.6.summary.still.steady_psnr", "release before {:.2f}); slow"),
    (LUMA_KINDS, LUMA_KINDS_SEQ, "subjects.2.summary.slow.steady_psnr", "slow {:.2f} ("),
    (LUMA_CHROMA, CHROMA, "models.x4-temporal-lite.still.cb", "Cb {:.2f}, Cr"),
    (LUMA_CHROMA, CHROMA, f"models.{BEFORE_FILE}.still.cr", "before's 49.63 and {:.2f};"),
    (LUMA_CHROMA, CHROMA, "models.x4-temporal-lite.still.rgb", "RGB {:.2f} against"),
    (LUMA_CHROMA, CHROMA, f"models.{BEFORE_FILE}.slow.rgb", "against {:.2f} |"),
    (LUMA_SPEED, X4LU, "subjects.x4-temporal-lite (jittered).ratio", "jittered {:.2f}x and"),
    (LUMA_SPEED, X4LUB, "subjects.x4-temporal-lite (jittered).ratio", "and {:.2f}x x4-fast's time"),
    (LUMA_SPEED, X4LU, f"subjects.{OLD} (jittered).ratio", "(the release before {:.2f}x and"),
    (LUMA_SPEED, X4LUB, f"subjects.{OLD} (jittered, half still).ratio", "and {:.2f}x), exact"),
    (LUMA_SPEED, X4LUB, "subjects.x4-temporal-lite (jittered, half still).ratio", "still 1.48x and {:.2f}x"),
    (FITTED_SPEED, X4FC, "subjects.x4-temporal-lite (jittered).ratio", "jittered {:.2f}x and"),
    (FITTED_SPEED, X4FCB, f"subjects.{OLD} (jittered).ratio", "and {:.2f}x): not shipped"),
    (SETTLE, UNSETTLED, "subjects.x4-temporal-lite (exact motion).ratio", "after x4-fast {:.2f}x, as"),
    (SETTLE, UNSETTLED, f"subjects.{OLD} (exact motion).ratio", "baseline {:.2f}x; swapped"),
    (SETTLE, SWAPPED, "subjects.weights/x4-temporal-lite (exact motion).ratio", "1.33x and {:.2f}x:"),
    (SETTLED_SPEED, X4S, "subjects.x4-temporal (exact motion).ratio", "x4-temporal {:.2f}x x4-fast's"),
    (SETTLED_SPEED, X4S, "subjects.x4-temporal (jittered).ratio", "motion, {:.2f}x jittered, 2.39x"),
    (SETTLED_SPEED, X4S, "subjects.weights/x4-temporal-lite (jittered).ratio", "1.25x, {:.2f}x jittered"),
    (BLOCK_FOLD, FOLD4, "cases.moving.blocks.median_ms", "moving {:.2f} ms against"),
    (BLOCK_FOLD, FOLD4, "cases.moving.opencv interleaved.vs_blocks", "against 8.25 ({:.2f}x)"),
    (BLOCK_FOLD, FOLD4, "cases.still.opencv interleaved.vs_blocks", "against 8.17 ({:.2f}x)"),
    (BLOCK_FOLD, FOLD2, "cases.moving.opencv interleaved.vs_blocks", "against 1.99 ({:.2f}x: slower)"),
    (BLOCK_FOLD, FOLD2, "cases.still.opencv interleaved.vs_blocks", "the camera still {:.2f}x |"),
    (BLOCK_STEP, STEP_LITE, "cases.jittered.blocks.vs_single", "x4-temporal-lite {:.2f}x x4-fast's"),
    (BLOCK_STEP, STEP_LITE, "cases.jittered.opencv interleaved.vs_single", "({:.2f}x with OpenCV's"),
    (BLOCK_STEP, STEP_LITE, "cases.jittered, half still.blocks.vs_single", "), {:.2f}x with half"),
    (BLOCK_STEP, STEP_LITE, "cases.jittered, still camera.opencv interleaved.vs_single", "camera still ({:.2f}x)"),
    (BLOCK_STEP, STEP_X4, "cases.jittered.blocks.vs_single", "x4-temporal {:.2f}x jittered"),
    (BLOCK_STEP, STEP_X4, "cases.exact motion.opencv interleaved.vs_single", "exact motion ({:.2f}x); x2"),
    (BLOCK_STEP, STEP_X2, "cases.jittered.blocks.vs_single", "x2-temporal {:.2f}x x2-fast's"),
    (BLOCK_STEP, STEP_X2, "cases.exact motion.blocks.vs_single", "(1.10x), {:.2f}x with exact"),
    (BLOCK_HARNESS, X4B, "subjects.x4-temporal-lite (jittered).ratio", "x4-temporal-lite {:.2f}x x4-fast's"),
    (BLOCK_HARNESS, X4B, "subjects.x4-temporal-lite (jittered, still camera).ratio", "still, {:.2f}x with the camera"),
    (BLOCK_HARNESS, X4R, "subjects.x4-temporal-lite (jittered, half still).ratio", "before 1.41x, {:.2f}x, 1.41x"),
    (BLOCK_HARNESS, X4B, "subjects.weights/x4-temporal (jittered).ratio", "x4-temporal {:.2f}x jittered ("),
    (BLOCK_HARNESS, X2B, "subjects.x2-temporal (jittered).ratio", "(another run) {:.2f}x x2-fast's"),
    (BANDED, X4BD, "subjects.x4-temporal (jittered, half still).ratio", "x4-temporal {:.2f}x x4-fast's"),
    (BANDED, X4B, "subjects.weights/x4-temporal (jittered, half still).ratio", "still ({:.2f}x in `temporal"),
    (BANDED, STEP_X4, "cases.jittered, half still.blocks.vs_single", "json`, {:.2f}x in `fold-step"),
    (BANDED, X4BD, "subjects.x4-temporal (jittered).ratio", "banding), {:.2f}x jittered"),
    (BANDED, X4BD, "subjects.weights/x4-temporal-lite (jittered).ratio", "x4-temporal-lite {:.2f}x jittered and"),
    (BANDED, X2BD, "subjects.x2-temporal (jittered, half still).ratio", "jittered, {:.2f}x with half"),
    (KEEP, KB, "mean.x4-temporal-lite.detail_psnr", "BSD100 detail: x4-temporal-lite {:.2f} dB"),
    (KEEP, KB, "mean.accumulation.detail_psnr", "plain accumulation {:.2f}; flat"),
    (KEEP, KB, "mean.accumulation.flat_psnr", "and {:.2f}; the lite's"),
    (KEEP, KB, "mean.x4-temporal-lite.detail_weight", "weight {:.3f} on detail"),
    (KEEP, KB, "mean.x4-temporal.detail_weight", "(x4-temporal {:.3f} and"),
    (KEEP, KM, "mean.x4-temporal-lite.detail_psnr", "mcmaster detail {:.2f}, "),
    (KEEP, KM, "mean.accumulation.flat_psnr", "47.49 and {:.2f} |"),
    (X2_KINDS, X2_KINDS_SEQ, "subjects.2.summary.still.steady_psnr", "still shots {:.2f} dB against"),
    (X2_KINDS, X2_KINDS_SEQ, "subjects.1.summary.still.steady_psnr", "accumulation's {:.2f} (+0.62)"),
    (X2_KINDS, X2_KINDS_SEQ, "subjects.2.summary.slow.steady_psnr", "slow {:.2f} against"),
    (X2_CLIP, "stability-clip-x2-display.json", "subjects.0.ratio_to_reference", "| {:.2f}x ("),
    (X2_CLIP, "stability-clip-x2-display.json", "subjects.0.mean", "({:.2f} against"),
    (X2_CLIP, "stability-clip-x2-display.json", "subjects.0.detail", '"detail" {:.2f} against'),
    (HOLD, HOLD_X4, "subjects.2.summary.still.steady_psnr", "x4-temporal-lite {:.2f} dB"),
    (HOLD, HOLD_X4, "subjects.4.summary.still.steady_psnr", "(without the hold {:.2f})"),
    (HOLD, HOLD_X4, "subjects.6.summary.still.steady_psnr", "x4-temporal {:.2f} ("),
    (HOLD, HOLD_X4, "subjects.1.summary.still.steady_psnr", "plain accumulation {:.2f};"),
    (HOLD, HOLD_X4, "subjects.2.summary.cut.after_cut_psnr", "after a cut {:.2f}"),
    (HOLD_2, HOLD_X2, "subjects.2.summary.still.steady_psnr", "still shots {:.2f} dB against"),
    (HOLD_2, HOLD_X2, "subjects.4.summary.still.steady_psnr", "against {:.2f} without"),
    (HOLD_2, HOLD_X2, "subjects.2.summary.fade.fade_lag", "settle in {:.2f} frames"),
    (HOLD_BSD, HOLD_B, "subjects.2.summary.still.steady_psnr", "x4-temporal-lite {:.2f} dB"),
    (HOLD_BSD, HOLD_B, "subjects.4.summary.still.steady_psnr", "(without {:.2f})"),
    (HOLD_BSD, HOLD_B, "subjects.6.summary.still.steady_psnr", "x4-temporal {:.2f} ("),
    (HOLD_KEEP, HOLD_KB, "mean.x4-temporal-lite.detail_psnr", "x4-temporal-lite {:.2f} dB"),
    (HOLD_KEEP, HOLD_KB, "mean.x4-temporal-lite.flat_psnr", "flat: {:.2f} and"),
    (HOLD_SPEED, HOLD_S, "subjects.x4-temporal-lite (jittered).ratio", "| {:.2f}x x4-fast's time jittered"),
    (HOLD_SPEED, HOLD_S, "subjects.nohold/x4-temporal-lite-nohold (jittered).ratio", "(without {:.2f}x)"),
    (HOLD_SPEED, HOLD_S, "subjects.x4-temporal-lite (jittered, still camera).ratio", "{:.2f}x with the camera still"),
    *_status_row("still", RN, "still.steady_psnr", 1, "accumulation {:.2f}) |"),
    *_status_row("still18", RN_SS, "still.steady_psnr", 1, "accumulation {:.2f}) |"),
    *_status_row("slow", RN, "slow.steady_psnr", 1, "accumulation {:.2f}) |"),
    *_status_row("slow18", RN_SS, "slow.steady_psnr", 1, "accumulation {:.2f}) |"),
    *_status_row("moderate", RN, "moderate.steady_psnr", 1, "({:.2f} and"),
    (RN_ROWS["moderate"], RN, "subjects.0.summary.moderate.steady_psnr", "and {:.2f}) |"),
    *_status_row("layer", RN, "layer.dynamic_psnr", 0, "({:.2f}) |"),
    *_status_row("cut", RN, "cut.after_cut_psnr", 0, "({:.2f}) |"),
    (RN_ROWS["depth"], RN, "subjects.2.summary.layer.disoccluded_psnr", "without depth {:.2f} and"),
    (RN_ROWS["depth"], RN, "subjects.4.summary.layer.disoccluded_psnr", "and {:.2f}) |"),
    (RN_ROWS["depth"], RN, "subjects.3.summary.layer.disoccluded_psnr", "| {:.2f} |"),
    (RN_ROWS["depth"], RN, "subjects.5.summary.layer.disoccluded_psnr", "| {:.2f} |"),
    *_status_row("pan", RN, "pan.steady_psnr", 1, "plain accumulation {:.2f}) |"),
    (RN_ROWS["grid"], RN, "subjects.2.summary.still.grid_error", "| {:.2f} |"),
    (RN_ROWS["grid"], RN, "subjects.4.summary.still.grid_error", "| {:.2f} |"),
    (RN_ROWS["fade"], RN, "subjects.2.summary.fade.fade_lag", "| {:.1f} |"),
    (RN_ROWS["fade"], RN, "subjects.4.summary.fade.fade_lag", "| {:.1f} |"),
    (RN_ROWS["clip"], RN_CLIP, "subjects.0.ratio_to_reference", "| {:.3f}x |"),
    (RN_ROWS["clip"], RN_CLIP, "subjects.1.ratio_to_reference", "| {:.3f}x |"),
    (RN_ROWS["sintel"], RN_SINTEL, "subjects.0.ratio_to_reference", "| {:.3f}x |"),
    (RN_ROWS["sintel"], RN_SINTEL, "subjects.1.ratio_to_reference", "| {:.3f}x |"),
    (RN_ROWS["step"], RN_SPEED, "subjects.x4-temporal (exact motion).ratio", "| {:.2f}x / "),
    (RN_ROWS["step"], RN_SPEED, "subjects.x4-temporal (jittered).ratio", "/ {:.2f}x |"),
    (RN_ROWS["step"], RN_SPEED, "subjects.x4-temporal-quality (exact motion).ratio", "| {:.2f}x / "),
    (RN_ROWS["step"], RN_SPEED, "subjects.x4-temporal-quality (jittered).ratio", "/ {:.2f}x |"),
    (RN_ROWS["step2"], RN_SPEED, "subjects.x4-temporal (jittered, half still).ratio", "| {:.2f}x / "),
    (RN_ROWS["step2"], RN_SPEED, "subjects.x4-temporal (jittered, still camera).ratio", " / {:.2f}x / "),
    (RN_ROWS["step2"], RN_SPEED, "subjects.x4-temporal (motion=None).ratio", "/ {:.2f}x |"),
    (RN_ROWS["step2"], RN_SPEED, "subjects.x4-temporal-quality (jittered, half still).ratio", "| {:.2f}x / "),
    (RN_ROWS["step2"], RN_SPEED, "subjects.x4-temporal-quality (jittered, still camera).ratio", "/ {:.2f}x / -"),
    (RN_DETAIL, RN_CLIP, "subjects.0.detail", "({:.2f} against"),
    (RN_DETAIL, RN_CLIP, "subjects.2.detail", "against {:.2f} on"),
    (RN_DETAIL2, RN_SINTEL, "subjects.0.detail", "clip, {:.2f} against"),
    (RN_DETAIL2, RN_SINTEL, "subjects.2.detail", "against {:.2f} on"),
    (RN_DETAIL2, RN_CLIP, "subjects.1.detail", "x4-temporal-quality {:.2f} and"),
    (RN_DETAIL2, RN_SINTEL, "subjects.1.detail", "and {:.2f})."),
    (
        "x4-temporal without it: on the held-out still shots it then scores",
        NOHOLD,
        "subjects.4.summary.still.steady_psnr",
        "scores {:.2f}",
    ),
    (
        "dB against 42.88 with the hold, slow shots and fades",
        NOHOLD,
        "subjects.2.summary.still.steady_psnr",
        "against {:.2f} with",
    ),
    (LIGHT_ROW, LIGHT_JPEG, "rows.12.psnr", "x4 at 93: {:.2f} /"),
    (LIGHT_ROW, LIGHT_JPEG, "rows.13.psnr", "/ {:.2f} dB against x4-video's"),
    (LIGHT_ROW, LIGHT_FORCED, "rows.4.psnr", "x4-video's {:.2f} /"),
    (LIGHT_ROW, LIGHT_FORCED, "rows.5.psnr", "29.79 / {:.2f}; at 95"),
    (LIGHT_ROW, LIGHT_JPEG, "rows.14.psnr", "at 95: {:.2f} / 26.82"),
    (LIGHT_ROW, LIGHT_JPEG, "rows.15.psnr", "30.24 / {:.2f} against"),
    (LIGHT_ROW, LIGHT_FORCED, "rows.6.psnr", "against {:.2f} / 26.66"),
    (LIGHT_ROW, LIGHT_FORCED, "rows.7.psnr", "29.92 / {:.2f}; x2"),
    (LIGHT_ROW, LIGHT_X2, "rows.12.psnr", "x2 at 93: {:.2f} /"),
    (LIGHT_ROW, LIGHT_X2, "rows.13.psnr", "35.20 / {:.2f} against"),
    (LIGHT_ROW, LIGHT_X2_FORCED, "rows.4.psnr", "x2-video's {:.2f} /"),
    (LIGHT_ROW, LIGHT_X2_FORCED, "rows.5.psnr", "35.32 / {:.2f}; at 95"),
    (LIGHT_ROW, LIGHT_X2, "rows.14.psnr", "at 95: {:.2f} / 31.13"),
    (LIGHT_ROW, LIGHT_X2_FORCED, "rows.6.psnr", "against {:.2f} / 30.99"),
    (LIGHT_ROW, LIGHT_JPEG, "rows.10.psnr", "(x4 {:.2f} /"),
    (LIGHT_ROW, LIGHT_X2, "rows.10.psnr", "x2 {:.2f} / 30.53"),
    (LIGHT_ROW, LIGHT_JPEG, "rows.2.psnr", "the fast models {:.2f} /"),
    (LIGHT_ROW, LIGHT_X2, "rows.2.psnr", "and {:.2f} / 30.34"),
    (VIDEO_NOW, VIDEO_NOW_JSON, "subjects.x4-temporal (defaults).median_fps", "({:.2f} against"),
    (VIDEO_NOW, VIDEO_NOW_JSON, "subjects.x4-fast (defaults).median_fps", "against {:.2f} frames/s"),
    (VIDEO_NOW, VIDEO_NOW_JSON, "subjects.x4-fast --precision fp32.median_fps", "FP32's {:.2f})"),
    (VIDEO_NOW, VIDEO_NOW_JSON, "ratio.x4-temporal / x4-fast (defaults)", "| {:.2f}x ("),
    ("the stream against 38.47 in-process, serving time", STREAM_NOW, "in_process_median_ms", "against {:.2f} in"),
    ("the stream against 38.47 in-process, serving time", STREAM_NOW, "serving_median_ms", "time {:.2f} ms"),
    ("`benchmarks/results/stream-temporal-x4-now.json`): 40.42 ms", STREAM_NOW, "stream_median_ms", "): {:.2f} ms"),
    ("the stream against 38.47 in-process, serving time", STREAM_NOW, "serving_p90_ms", "(p90 {:.2f};"),
    ("transport floor 1.98), replies identical", STREAM_NOW, "memory.per_stream_mb", "{:.1f} MB per stream"),
    (VIDEO_NOW, VIDEO_NOW_JSON, "subjects.x4-temporal (defaults).engine_alone_fps.0", "alone: {:.2f},"),
    (VIDEO_NOW, VIDEO_NOW_JSON, "subjects.x4-fast (defaults).engine_alone_fps.0", ", {:.1f} and"),
    (VIDEO_NOW, VIDEO_NOW_JSON, "subjects.x4-fast --precision fp32.engine_alone_fps.0", "and {:.2f} in"),
]


def _line(words: str) -> str:
    lines = [line for line in (REPO / "README.md").read_text().splitlines() if words in line]
    assert len(lines) == 1, f"README: {len(lines)} lines hold {words!r}"
    return lines[0]


@pytest.mark.parametrize(("words", "file", "path", "shown"), FIGURES, ids=[f"{f[1]}:{f[2]}" for f in FIGURES])
def test_the_readme_quotes_the_committed_json(words, file, path, shown):
    value = _value(json.loads((RESULTS / file).read_text()), path)
    assert shown.format(value) in _line(words), f"README says otherwise than {file} {path} = {value}"


def test_every_json_the_readme_cites_is_committed():
    cited = set(re.findall(r"benchmarks/results/([\w.-]+\.json)", (REPO / "README.md").read_text()))
    missing = sorted(name for name in cited if not (RESULTS / name).is_file())
    assert cited and missing == []
