"""Quality on compressed inputs: the evaluation protocol with each LR image also JPEG- or H.264-compressed.

    python benchmarks/compressed_eval.py --models x4-fast x4-quality x4-video \\
        --data ../shared/data/val/Set5 ../shared/data/val/BSD100 --json benchmarks/results/compressed-x4.json
    python benchmarks/compressed_eval.py --models x4-fast x4-video \\
        --clip ../shared/data/video/concourse_720p50_audio.avi --json benchmarks/results/compressed-clip-x4.json

For every model and every input (clean; ``--degrade`` specs, default ``jpeg:40`` and ``h264:28``), PSNR and
SSIM on Y with the scale shaved (DESIGN section 4), bicubic of the same input alongside: what
``upscaler eval --degrade SPEC`` prints, for several models in one file (a model may be a ``.safetensors``
candidate from ``upscaler train``). ONNX Runtime on the CPU for built-in models, PyTorch for candidates; FP32.

With ``--clip``, real video in place of still images: ``--clip-frames`` consecutive frames of the clip are
the references, each reduced by the protocol's bicubic, and the reduced frames go through libx264 as one
stream (``--clip-crf``, preset medium, B-frames, one keyframe: P- and B-frames as a player sees them); every
model upscales each decoded frame, and PSNR and SSIM on Y (scale shaved) are averaged over the frames.

``--source`` (``upscaler.sources``): ``compressed``, the default, runs each model as it is (what ``upscaler
eval --source compressed`` prints); ``auto`` lets x4-video and x2-video hand an input to their clean partner
as the commands do: compressed inputs are known as such (a codec made them), clean ones are judged by their
pixels (a JPEG grid) and, with ``--clip``, as raw frames (a lossless source). Rows then carry ``source`` and
``models_run`` (images per model).

    python benchmarks/compressed_eval.py --models x4-fast x4-video --source auto \
        --data ../shared/data/val/Set5 ../shared/data/val/BSD100 --json benchmarks/results/compressed-x4-auto.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import numpy as np

from upscaler.bench.report import emit_json
from upscaler.degradations import bicubic, compress_sequence, modcrop, protocol_degradation
from upscaler.evaluate import evaluate_folder, score_image
from upscaler.facade import Upscaler
from upscaler.sources import PerSource, spec_evidence
from upscaler.sysinfo import machine_info


def _router(model: str, source: str) -> tuple[Upscaler, PerSource]:
    """``model``'s upscaler and the per-image choice ``--source`` makes (``upscaler.sources``); ONNX Runtime on
    the CPU for built-in models, PyTorch for a ``.safetensors`` candidate; FP32."""
    per = PerSource.of(model, source, backend="cpu", tile=0, precision="fp32")
    return per.first, per


def _ran(per: PerSource, before: Counter) -> dict:
    """The models that ran since ``before`` (a copy of ``per.used``), for a row measured with ``--source``."""
    return {"source": per.source, "models_run": dict(per.used - before)} if per.source != "compressed" else {}


def _scores(model: str, folders: list[Path], specs: list[str | None], source: str) -> list[dict]:
    up, per = _router(model, source)
    rows = []
    for spec in specs:
        lossy, quality = spec_evidence(spec)  # as the compressed file would say; clean: the pixels tell
        for folder in folders:
            kind = protocol_degradation(up.model.degradation)
            before = Counter(per.used)
            run = partial(per.upscale, lossy=lossy, quality=quality)
            score = evaluate_folder(folder, run, up.scale, kind, compression=spec)
            rows.append({"model": model, "engine": up.engine.name, "input": spec or "clean", **score.summary(),
                         **_ran(per, before)})  # fmt: skip
            print(json.dumps(rows[-1]), file=sys.stderr)
    return rows


def _clip_inputs(path: Path, frames: int, scale: int, crfs: list[int]) -> tuple[list[np.ndarray], dict]:
    """The clip's reference frames and, per input (``clean``, ``h264:CRF``), its reduced frames."""
    from upscaler.bench.stability import read_clip

    hr = [np.ascontiguousarray(modcrop(f, 2 * scale)) for f in read_clip(path, frames=frames)]
    lr = [bicubic(f, scale) for f in hr]
    return hr, {"clean": lr, **{f"h264:{crf}": compress_sequence(lr, crf) for crf in crfs}}


def _frame_scores(upscale, hr: list[np.ndarray], lr: list[np.ndarray], scale: int) -> dict:
    frames = [score_image(str(i), upscale(x), x, h, scale) for i, (x, h) in enumerate(zip(lr, hr))]
    keys = ("psnr", "ssim", "bicubic_psnr", "bicubic_ssim")
    return {"frames": len(frames), **{k: round(float(np.mean([getattr(f, k) for f in frames])), 4) for k in keys}}


def _clip_scores(models: list[str], path: Path, frames: int, crfs: list[int], source: str) -> list[dict]:
    routers = [_router(m, source) for m in models]
    scales = {up.scale for up, _ in routers}
    inputs = {scale: _clip_inputs(path, frames, scale, crfs) for scale in scales}
    rows = []
    for model, (up, per) in zip(models, routers):
        hr, by_input = inputs[up.scale]
        for name, lr in by_input.items():
            lossy = name != "clean"  # as the video command reads a codec: raw frames are a clean source
            before = Counter(per.used)
            score = _frame_scores(partial(per.upscale, lossy=lossy), hr, lr, up.scale)
            rows.append({"model": model, "engine": up.engine.name, "input": name, "dataset": path.name, **score,
                         **_ran(per, before)})  # fmt: skip
            print(json.dumps(rows[-1]), file=sys.stderr)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["x4-fast", "x4-quality", "x4-video"])
    parser.add_argument("--data", nargs="+", type=Path, default=[], help="folders of HR images")
    parser.add_argument("--clip", type=Path, help="a video: its frames are the references (see above)")
    parser.add_argument("--clip-frames", type=int, default=48, help="consecutive frames of --clip, from the first")
    parser.add_argument("--clip-crf", type=int, nargs="+", default=[28], help="libx264 CRFs for --clip")
    parser.add_argument("--degrade", nargs="+", default=["jpeg:40", "h264:28"], help="compressed inputs measured")
    parser.add_argument(
        "--source",
        choices=["auto", "compressed", "clean"],
        default="compressed",
        help="what the video models run (upscaler.sources): compressed (default) the model itself; auto its "
        "clean partner where a clean input shows no JPEG grid (compressed inputs are known as such, as the video "
        "command knows a codec); each row then says which models ran",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    started = time.monotonic()
    specs: list[str | None] = [None, *args.degrade]
    if not args.data and not args.clip:
        parser.error("give --data folders, a --clip, or both")
    rows = [row for model in args.models for row in _scores(model, args.data, specs, args.source)] if args.data else []
    if args.clip:
        rows += _clip_scores(args.models, args.clip, args.clip_frames, args.clip_crf, args.source)
    report = {
        "command": "python benchmarks/compressed_eval.py " + " ".join(sys.argv[1:]),
        "machine": machine_info(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - started),
        "statistic": "mean PSNR (dB) and SSIM on Y over each dataset's images (a clip's frames), scale shaved",
        "rows": rows,
    }
    emit_json(report, args.json)


if __name__ == "__main__":
    main()
