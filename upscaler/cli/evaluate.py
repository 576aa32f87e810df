"""``upscaler eval``: PSNR/SSIM on Y by the benchmark protocol, bicubic alongside."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from upscaler.cli.common import add_engine_options, add_source_option, positive_int
from upscaler.degradations import DEGRADATIONS, protocol_degradation

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``eval`` subcommand."""
    p = sub.add_parser(
        "eval",
        help="measure PSNR/SSIM on folders of high-resolution images",
        description="Evaluate a model by the standard protocol: HR modcropped, LR by MATLAB-style bicubic (or, for "
        "--degradation render, point sampling at phase 0), "
        "PSNR/SSIM on Y with the scale shaved from each border. Bicubic is reported alongside.",
    )
    add_engine_options(p)
    p.add_argument("--data", "-d", nargs="+", required=True, metavar="DIR", help="folders of HR images")
    p.add_argument(
        "--degradation",
        default=None,
        choices=sorted(DEGRADATIONS),
        help="how LR inputs are made (default: the model's own)",
    )
    p.add_argument(
        "--degrade",
        metavar="CODEC:LEVEL",
        type=_compression,
        help="compress each LR input after the degradation, as sources are: jpeg:Q (quality 1-100) or h264:CRF "
        "(libx264 keyframe, CRF 0-51); e.g. jpeg:40, h264:28. Bicubic gets the same input",
    )
    add_source_option(p, "--degrade (a compressed source) and, without it, a JPEG's 8x8 grid in each input")
    p.add_argument("--limit", type=positive_int, help="only the first N images of each folder")
    p.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="PATH",
        help="write JSON with per-image scores (to PATH, or stdout if no PATH)",
    )
    p.add_argument("--markdown", metavar="PATH", help="write the table as markdown")
    p.set_defaults(func=_run)


def _compression(text: str) -> str:
    from upscaler.degradations import check_compression

    try:
        check_compression(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from upscaler.evaluate import evaluate_folder, format_markdown, format_table

    folders = [Path(d) for d in args.data]
    for folder in folders:
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: not a folder of images")
    for report_path in (args.json, args.markdown):  # fail now, not after the whole evaluation
        if report_path and report_path != "-":
            parent = Path(report_path).resolve().parent
            if Path(report_path).is_dir() or not parent.is_dir():
                raise FileNotFoundError(f"{report_path}: cannot write a report there")
    from upscaler.sources import PerSource, spec_evidence

    per_source = PerSource.of(args.model, args.source, backend=args.backend, tile=0, threads=args.threads,
                              precision=args.precision)  # fmt: skip
    upscaler = per_source.first
    lossy, quality = spec_evidence(args.degrade)  # as the compressed file would say
    degradation = args.degradation or protocol_degradation(upscaler.model.degradation)
    scores = []
    for folder in folders:
        with tqdm(desc=folder.name, unit="img", file=sys.stderr, disable=None, leave=False) as bar:
            scores.append(
                evaluate_folder(
                    folder,
                    lambda image: per_source.upscale(image, lossy, quality),
                    upscaler.scale,
                    degradation,
                    limit=args.limit,
                    on_image=lambda _name: bar.update(1),
                    compression=args.degrade,
                )
            )
    name = upscaler.model.name
    report = {
        "model": name,
        "engine": upscaler.engine.name,
        "scale": upscaler.scale,
        "degradation": degradation,
        "compression": args.degrade,
        "source": args.source,
        "models_run": dict(per_source.used),
        "datasets": [s.to_dict() for s in scores],
    }
    if args.json == "-":
        print(json.dumps(report, indent=2))
    else:
        print(format_table(name, scores))
        if set(per_source.used) != {name}:
            used = ", ".join(f"{model} {n}" for model, n in per_source.used.items())
            print(f"images per model (--source {args.source}): {used}")
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(format_markdown(name, scores))
    return 0
