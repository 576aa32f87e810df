"""``upscaler bench``: latency of models side by side (network-only and end-to-end)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

from upscaler.cli.common import positive_int
from upscaler.runtime import BACKENDS

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``bench`` subcommand."""
    p = sub.add_parser(
        "bench",
        help="measure latency of models side by side",
        description="Time models on one frame size: the engine alone (network) and Upscaler.upscale "
        "(end-to-end: uint8 in, uint8 out). Medians and p95 over rounds x runs calls.",
    )
    p.add_argument("--model", "-m", nargs="+", default=["default"], help="models to compare (default: default)")
    p.add_argument("--size", default="320x180", help="input frame WIDTHxHEIGHT (default: 320x180)")
    p.add_argument("--backend", "-b", default="onnxruntime", choices=list(BACKENDS))
    p.add_argument("--threads", type=positive_int, help="CPU threads (default: all cores)")
    p.add_argument("--rounds", type=positive_int, default=5, help="rounds over all models (default: 5)")
    p.add_argument("--runs", type=positive_int, default=10, help="timed calls per model per round (default: 10)")
    p.add_argument("--warmup", type=positive_int, default=3, help="untimed calls per model first (default: 3)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from upscaler.bench import machine_info, measure, parse_size

    size = parse_size(args.size)
    if args.json and not Path(args.json).resolve().parent.is_dir():
        raise FileNotFoundError(f"{args.json}: cannot write a report there")
    results = measure(
        args.model,
        size,
        backend=args.backend,
        threads=args.threads,
        rounds=args.rounds,
        runs=args.runs,
        warmup=args.warmup,
    )
    summaries = [r.summary() for r in results]
    print(f"{size[0]}x{size[1]} input, median (p95) ms over {args.rounds} x {args.runs} calls")
    print(f"{'model':<14} {'engine':<17} {'network':>16} {'end-to-end':>16} {'fps':>7}")
    for s in summaries:
        net, e2e = s["network"], s["end_to_end"]
        print(
            f"{s['model']:<14} {s['engine']:<17} {net['median_ms']:>8.2f} ({net['p95_ms']:>5.1f})"
            f" {e2e['median_ms']:>8.2f} ({e2e['p95_ms']:>5.1f}) {e2e['fps']:>7.1f}"
        )
    if args.json:
        report = {
            "measured": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine_info(),
            "size": list(size),
            "results": summaries,
        }
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0
