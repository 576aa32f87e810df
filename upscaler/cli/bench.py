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


def _run_http(args: argparse.Namespace, size: tuple[int, int]) -> int:
    """The service against the same model called in-process, side by side in one run."""
    import numpy as np

    from upscaler.bench import machine_info, measure
    from upscaler.bench_http import post_frames, server_rss_bytes

    model = args.model[0]
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    frame = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    try:
        server_rss_bytes(args.http, headers)
    except OSError as exc:
        raise ConnectionError(f"{args.http}: no service answers there ({exc})") from None
    most = max(args.concurrency)  # warm-up: every batch size the runs will see
    post_frames(args.http, frame, concurrency=most, requests=8 * most, model=model, headers=headers)
    rss_before = server_rss_bytes(args.http, headers)
    direct = measure([model], size, backend=args.backend, threads=args.threads, rounds=2, runs=args.runs)[0]
    loads = [
        post_frames(args.http, frame, concurrency=c, requests=args.requests, model=model, headers=headers).summary()
        for c in args.concurrency
    ]
    direct_after = measure([model], size, backend=args.backend, threads=args.threads, rounds=2, runs=args.runs)[0]
    e2e = direct.end_to_end_ms + direct_after.end_to_end_ms
    direct_ms = float(np.median(e2e))
    direct_fps = 1000.0 / direct_ms
    rss_after = server_rss_bytes(args.http, headers)
    print(
        f"{size[0]}x{size[1]} rgb24 frames, model {direct.model}; in-process Upscaler: {direct_ms:.2f} ms median, "
        f"{direct_fps:.1f} fps"
    )
    print(
        f"{'clients':>7} {'requests':>8} {'fps':>7} {'x direct':>8} {'median ms':>9} {'+ms':>6} {'p95 ms':>7}  status"
    )
    for s in loads:
        ratio = s["fps"] / direct_fps
        extra = (s["median_ms"] or float("nan")) - direct_ms
        s.update({"throughput_ratio": round(ratio, 3), "median_overhead_ms": round(extra, 2)})
        print(
            f"{s['concurrency']:>7} {s['requests']:>8} {s['fps']:>7.1f} {ratio:>8.2f} {s['median_ms'] or 0:>9.2f} "
            f"{extra:>6.2f} {s['p95_ms'] or 0:>7.2f}  {s['status']}"
        )
    if rss_before and rss_after:
        print(f"service resident memory: {rss_before / 2**20:.1f} MB -> {rss_after / 2**20:.1f} MB")
    if args.json:
        report = {
            "measured": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine_info(),
            "url": args.http,
            "size": list(size),
            "direct": {
                "model": direct.model,
                "engine": direct.engine,
                "median_ms": round(direct_ms, 2),
                "fps": round(direct_fps, 1),
            },
            "http": loads,
            "service_rss_mb": [round(v / 2**20, 1) if v else None for v in (rss_before, rss_after)],
        }
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0
