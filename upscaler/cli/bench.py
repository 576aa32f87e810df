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
    p.add_argument(
        "--precision", nargs="+", default=None, choices=["fp32", "fp16", "int8"], help="precisions to compare"
    )
    p.add_argument("--batch", type=positive_int, nargs="+", default=[1], help="frames per call (default: 1)")
    p.add_argument("--rounds", type=positive_int, default=5, help="rounds over all models (default: 5)")
    p.add_argument("--runs", type=positive_int, default=10, help="timed calls per model per round (default: 10)")
    p.add_argument("--warmup", type=positive_int, default=3, help="untimed calls per model first (default: 3)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    http = p.add_argument_group("service mode", "load a running service (upscaler serve) with raw frames")
    http.add_argument("--http", metavar="URL", help="base URL of a running service, e.g. http://127.0.0.1:8000")
    http.add_argument("--concurrency", type=positive_int, nargs="+", default=[1, 8], help="clients (default: 1 8)")
    http.add_argument("--requests", type=positive_int, default=200, help="requests per concurrency (default: 200)")
    http.add_argument("--api-key", help="bearer key, if the service wants one")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from upscaler.bench import machine_info, measure, parse_size

    size = parse_size(args.size)
    if args.json and not Path(args.json).resolve().parent.is_dir():
        raise FileNotFoundError(f"{args.json}: cannot write a report there")
    if args.http:
        return _run_http(args, size)
    results = measure(
        args.model,
        size,
        backend=args.backend,
        threads=args.threads,
        rounds=args.rounds,
        runs=args.runs,
        warmup=args.warmup,
        precisions=args.precision or [None],
        batches=args.batch,
        spin=len(args.model) * len(args.precision or [None]) == 1,  # engines side by side: none spins
    )
    summaries = [r.summary() for r in results]
    print(f"{size[0]}x{size[1]} input, median (p95) ms over {args.rounds} x {args.runs} calls")
    print(f"{'model':<14} {'engine':<17} {'prec':<5} {'batch':>5} {'network':>16} {'end-to-end':>16} {'fps':>7}")
    for s in summaries:
        net, e2e = s["network"], s["end_to_end"]
        print(
            f"{s['model']:<14} {s['engine']:<17} {s['precision']:<5} {s['batch']:>5} "
            f"{net['median_ms']:>8.2f} ({net['p95_ms']:>5.1f})"
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


def _run_http(args: argparse.Namespace, size: tuple[int, int]) -> int:
    """The service against the same model called in-process, interleaved round by round in one run."""
    from upscaler.bench import machine_info
    from upscaler.bench_http import compare

    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    report = compare(
        args.http,
        args.model[0],
        size,
        concurrency=args.concurrency,
        requests=args.requests,
        rounds=args.rounds,
        runs=args.runs,
        backend=args.backend,
        threads=args.threads,
        headers=headers,
    )
    direct = report["direct"]
    print(
        f"{size[0]}x{size[1]} rgb24 frames, model {direct['model']}; in-process Upscaler: {direct['median_ms']:.2f} ms "
        f"median, {direct['fps']:.1f} fps; ratios are medians over {args.rounds} interleaved rounds"
    )
    print(
        f"{'clients':>7} {'requests':>8} {'fps':>7} {'x direct':>8} {'median ms':>9} {'+ms':>6} {'p95 ms':>7}  status"
    )
    for s in report["http"]:
        print(
            f"{s['concurrency']:>7} {s['requests']:>8} {s['fps']:>7.1f} {s['throughput_ratio']:>8.2f} "
            f"{s['median_ms'] or 0:>9.2f} {s['median_overhead_ms']:>6.2f} {s['p95_ms'] or 0:>7.2f}  {s['status']}"
        )
    before, after = report["service_rss_mb"]
    if before and after:
        print(f"service resident memory: {before:.1f} MB -> {after:.1f} MB")
    if args.json:
        report = {"measured": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine_info(), **report}
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0
