"""``upscaler bench``: engines, models, sizes, batches and precisions side by side, with peers.

Two views of time for every row: the network alone, and end-to-end (PNG
in, PNG out) with its stages. Service mode (``--url``) loads a running
``upscaler serve`` instead. Sequence mode (``--sequences DIR``) runs temporal
and single-frame models over standard rendered sequences made from the
folder's images and reports quality after warm-up, on moving layers, after
cuts, temporal stability and time per frame (``upscaler.bench.sequence``).
Clip mode (``--clip FILE``) measures temporal stability on a real clip, which
has no ground truth: the warping error of consecutive outputs under the
input's optical flow, for each model beside bicubic (``upscaler.bench.stability``).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from upscaler.bench.sweep import SIZE_PRESETS
from upscaler.cli.common import add_batch_option, positive_int

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``bench`` subcommand."""
    p = sub.add_parser(
        "bench",
        help="measure latency and throughput: engines, models, sizes and peers side by side",
        description="Sweep engines x models x precisions x sizes x batch sizes; for each: warm-up, then timed runs "
        "in interleaved rounds; p50/p95/p99/max latency, frames/s, output megapixels/s; network-only "
        "and end-to-end (decode, prepare, infer, finish, encode). Bicubic and Lanczos always run alongside; OpenCV "
        "dnn_superres models with --peers. Every row shows its ratio to the first row of its size and batch. Host "
        "memory is measured per case, each in a fresh process running only that case.",
    )
    p.add_argument("--model", "-m", nargs="+", default=["default"], help="models (default: default)")
    p.add_argument(
        "--engine",
        "-e",
        "--backend",
        "-b",
        nargs="+",
        default=None,
        help="engines or backends (default: every engine this machine runs)",
    )
    p.add_argument("--precision", nargs="+", choices=["fp32", "fp16", "int8"], help="precisions (default: best)")
    p.add_argument(
        "--size",
        "-s",
        nargs="+",
        default=["180p"],
        help=f"input sizes: {' '.join(SIZE_PRESETS)} or WxH (default: 180p)",  # the parser's own table
    )
    add_batch_option(p, nargs="+", default=["1"], help="frames per call, e.g. 1,4 (default: 1)")
    p.add_argument("--rounds", type=positive_int, default=3, help="interleaved rounds over all cases (default: 3)")
    p.add_argument("--runs", type=positive_int, default=5, help="timed calls per case per round (default: 5)")
    p.add_argument("--budget-s", type=float, help="instead of --runs: seconds per case (split over the rounds)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls per case first (default: 2)")
    p.add_argument("--threads", type=positive_int, help="CPU threads (default: all cores)")
    p.add_argument("--peers", metavar="DIR", help="folder of OpenCV dnn_superres models (ESPCN_x4.pb, ...)")
    p.add_argument(
        "--peer",
        nargs="+",
        choices=["espcn", "fsrcnn", "fsrcnn-small", "lapsrn"],  # the peer files' names (bench.peers), lower case
        metavar="NAME",
        help="with --peers: only these (espcn, fsrcnn, fsrcnn-small, lapsrn; default: every one found; LapSRN "
        "alone can take minutes)",
    )
    p.add_argument("--quality", metavar="DIR", help="also measure PSNR on this folder (upscaler eval's protocol)")
    p.add_argument("--quality-limit", type=positive_int, help="images of --quality to use (default: all)")
    p.add_argument("--json", metavar="PATH", help="write every figure, the machine and library versions")
    p.add_argument("--markdown", metavar="PATH", help="write the table as markdown")
    p.add_argument("--plot", metavar="PATH", help="write a PNG plot (needs matplotlib: upscaler[bench])")
    p.add_argument("--no-memory", action="store_true", help="skip the host memory probes (one fresh process per case)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_service_mode(p)
    _add_sequence_mode(p)
    _add_clip_mode(p)
    p.set_defaults(func=_run)


def _add_service_mode(p: argparse.ArgumentParser) -> None:
    http = p.add_argument_group("service mode", "load a running service (upscaler serve) with raw frames")
    http.add_argument("--url", "--http", dest="url", metavar="URL", help="base URL, e.g. http://127.0.0.1:8000")
    http.add_argument("--concurrency", nargs="+", default=["1", "8"], help="clients, e.g. 1,4,16 (default: 1 8)")
    http.add_argument("--requests", type=positive_int, default=200, help="requests per concurrency (default: 200)")
    http.add_argument(
        "--engine-baseline", action="store_true", help="also time the same model in-process: overhead ratios"
    )
    http.add_argument("--api-key", help="bearer key, if the service wants one")


def _add_sequence_mode(p: argparse.ArgumentParser) -> None:
    seq = p.add_argument_group(
        "sequence mode",
        "temporal models (and single-frame ones, bicubic and plain accumulation beside them) over rendered sequences "
        "made from a folder's images: camera pans, moving layers, unsignalled cuts, still and slow shots, fades; "
        "PSNR/SSIM after warm-up, on the moving layer and what it uncovers, after cuts, a flat region's pattern by "
        "pixel phase, how soon a fade reaches the source's level, warping error and time per frame. "
        "Uses --model, --engine (one), --precision "
        "(single-frame models), --threads, --json, --markdown",
    )
    seq.add_argument("--sequences", nargs="+", metavar="DIR", help="folders of images to make sequences from")
    seq.add_argument("--sequence-size", default="96x64", metavar="WxH", help="low-resolution size (default: 96x64)")
    seq.add_argument(
        "--frames", metavar="N", help="frames per sequence (default: 32); in clip mode frames of the clip (default: 48)"
    )
    seq.add_argument("--limit", metavar="N", help="images per folder (default: all)")
    seq.add_argument(
        "--kinds",
        nargs="+",
        metavar="KIND",
        help="only these sequence kinds (pan, layer, cut, still, still-unjittered, slow, fade, moderate), each made "
        "of every image: a larger sample of one kind (default: the standard set)",
    )
    seq.add_argument(
        "--sequence-warmup", default="8", metavar="N", help="frames before the steady state counts (default: 8)"
    )
    seq.add_argument("--flow", action="store_true", help="also run temporal models with motion estimated (no vectors)")


def _add_clip_mode(p: argparse.ArgumentParser) -> None:
    clip = p.add_argument_group(
        "clip mode",
        "temporal stability on a real clip (no ground truth): the warping error of consecutive outputs under the "
        "input's optical flow, over pixels where the flow is reliable, pairs that are cuts skipped; each model "
        "(default: x4-temporal x4-fast x4-quality) beside bicubic; temporal models get jitter (0, 0) and estimate "
        "their motion. Frames are area-reduced to fit --size first, keeping the clip's aspect ratio (one size; "
        "'source' keeps the clip's). Uses --model, "
        "--engine (one), --precision (single-frame models), --threads, --frames, --json",
    )
    clip.add_argument("--clip", metavar="FILE", help="a video file")
    clip.add_argument("--clip-start", default="0", metavar="N", help="frames of the clip to skip first (default: 0)")
    clip.add_argument(
        "--clip-flow",
        choices=["farneback", "dis"],
        default="farneback",
        help="optical flow of the input the metric warps by (default: farneback)",
    )


def _check_outputs(args: argparse.Namespace) -> None:
    for option in ("json", "markdown", "plot"):
        value = getattr(args, option)
        if value and not Path(value).resolve().parent.is_dir():
            raise FileNotFoundError(f"--{option} {value}: no such folder")
    for option in ("peers", "quality"):
        value = getattr(args, option)
        if value and not Path(value).is_dir():
            raise FileNotFoundError(f"--{option} {value}: no such folder")
    if getattr(args, "peer", None) and not args.peers:
        raise ValueError("--peer picks among the --peers models: give --peers DIR too (the OpenCV dnn_superres "
                         "models' folder)")  # fmt: skip
    if args.budget_s is not None and args.budget_s <= 0:
        raise ValueError(f"--budget-s must be positive, got {args.budget_s}")
    if args.warmup < 0:
        raise ValueError(f"--warmup must not be negative, got {args.warmup}")
    if args.plot and not args.sequences and not args.url:  # the sweep plots at its end: find out before it runs
        from upscaler.bench.plot import require_matplotlib

        require_matplotlib()


def _run(args: argparse.Namespace) -> int:
    from upscaler.bench.sweep import parse_int_list, parse_sizes

    _check_outputs(args)
    if args.clip:
        return _run_clip(args)
    if args.sequences:
        return _run_sequences(args)
    sizes = parse_sizes(args.size)
    if args.url:
        return _run_http(args, sizes[0], parse_int_list(args.concurrency, "concurrency"))
    return _run_local(args, sizes, parse_int_list(args.batch_size, "batch sizes"))


def _engines(args: argparse.Namespace) -> list[str]:
    from upscaler.runtime import BACKENDS, ENGINES

    names = args.engine or list(ENGINES)
    unknown = [n for n in names if n not in BACKENDS]
    if unknown:
        raise ValueError(f"unknown engine {unknown[0]!r}; choose from {', '.join(BACKENDS)}")
    return names


def _run_local(args: argparse.Namespace, sizes: list[tuple[int, int]], batches: list[int]) -> int:
    from tqdm import tqdm

    from upscaler.bench import machine_info
    from upscaler.bench.memory import MEMORY_NOTE, measure_memory
    from upscaler.bench.peers import find_peers, resize_peers
    from upscaler.bench.report import add_ratios, format_table
    from upscaler.bench.runner import Case, PeerSubject, build_subjects, measure_quality, run_cases

    engines = _engines(args)
    precisions = args.precision or [None]
    several = len(engines) * len(args.model) * len(precisions) > 1
    subjects, skipped = build_subjects(args.model, engines, precisions, threads=args.threads, spin=not several)
    for engine, reason in dict.fromkeys((s.engine, s.reason) for s in skipped):
        print(f"skipped {engine}: {reason}", file=sys.stderr)
    if not subjects:
        raise RuntimeError("nothing to measure: no engine could run the models asked for")
    scales = list(dict.fromkeys(s.scale for s in subjects))
    peers = [p for scale in scales for p in resize_peers(scale)]
    if args.peers:
        peers += [p for scale in scales for p in find_peers(Path(args.peers), scale, args.peer)]
    everyone = [*subjects, *(PeerSubject(p) for p in peers)]
    cases = [Case(s, w, h, n) for (w, h) in sizes for n in batches for s in everyone]
    bar = tqdm(total=args.rounds * len(cases), desc="bench", unit="case", disable=args.no_progress or None)
    with bar:
        run_cases(
            cases,
            rounds=args.rounds,
            runs=args.runs,
            warmup=args.warmup,
            budget_s=args.budget_s,
            on_step=lambda case: bar.update(1),
        )
    if not args.no_memory:  # after the timing, so the probes' processes do not share the machine with it
        with tqdm(total=len(cases), desc="memory", unit="case", disable=args.no_progress or None) as bar:
            failures = measure_memory(cases, on_step=lambda case: bar.update(1))
        for line in failures:
            print(f"memory probe failed for {line}", file=sys.stderr)
    quality = {}
    if args.quality:
        for s in tqdm(everyone, desc="quality", disable=args.no_progress or None):
            quality[id(s)] = measure_quality(s, args.quality, args.quality_limit)
    rows = []
    for case in cases:
        row = case.summary()
        if id(case.subject) in quality:
            row["quality"] = quality[id(case.subject)]
        rows.append(row)
    rows = add_ratios(rows)
    print(format_table(rows))
    print(
        f"latency in ms (p50, p99) over {args.rounds} interleaved rounds; fps and 'x first' are end-to-end "
        "(PNG in, PNG out); 'x first' compares with the first row of the same size and batch"
    )
    report = {
        "measured": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "upscaler " + " ".join(sys.argv[2:]) if len(sys.argv) > 1 else "upscaler bench",
        "machine": machine_info(),
        "memory": None if args.no_memory else MEMORY_NOTE,
        "settings": {
            "rounds": args.rounds,
            "runs": args.runs,
            "budget_s": args.budget_s,
            "warmup": args.warmup,
            "threads": args.threads,
            "sizes": [f"{w}x{h}" for w, h in sizes],
            "batches": batches,
        },
        "rows": rows,
        "skipped": [s.__dict__ for s in skipped],
    }
    _write_outputs(args, report, rows)
    return 0


def _write_outputs(args: argparse.Namespace, report: dict, rows: list[dict]) -> None:
    from upscaler.bench.report import format_markdown
    from upscaler.io import write_atomic

    if args.json:
        write_atomic(args.json, json.dumps(report, indent=2) + "\n")
    if args.markdown:
        write_atomic(args.markdown, format_markdown(rows, machine=report["machine"], note=report["memory"] or ""))
    if args.plot:
        from upscaler.bench.plot import plot

        machine = report["machine"]
        gpu = machine["gpus"][0]["name"] if machine.get("gpus") else None
        plot(rows, Path(args.plot), title=f"{machine['cpu']}, {machine['cores']} cores" + (f", {gpu}" if gpu else ""))


def _one_engine(args: argparse.Namespace, mode: str) -> tuple[str, str | None]:
    """The one backend (default ``auto``) and precision (default None) a sequence or clip run takes."""
    from upscaler.runtime import BACKENDS

    engines = args.engine or ["auto"]
    if len(engines) > 1:
        raise ValueError(f"{mode} runs one engine (or backend), got {len(engines)}: {' '.join(engines)}")
    if engines[0] not in BACKENDS:
        raise ValueError(f"unknown engine {engines[0]!r}; choose from {', '.join(BACKENDS)}")
    if args.precision and len(args.precision) > 1:
        raise ValueError(f"{mode} runs one precision")
    return engines[0], args.precision[0] if args.precision else None


def _kinds(names: list[str] | None) -> list[str] | None:
    """``--kinds``, checked: known kinds, each once, in the report's order."""
    if names is None:
        return None
    from upscaler.bench.rendered import KINDS

    unknown = [k for k in names if k not in KINDS]
    if unknown:
        raise ValueError(f"--kinds: unknown kind {', '.join(unknown)}; choose from {', '.join(KINDS)}")
    return [k for k in KINDS if k in names]


def _int_option(text: str, option: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{option} must be a whole number, got {text!r}") from None
    if value < least:
        raise ValueError(f"{option} must be at least {least}, got {value}")
    return value


def _run_sequences(args: argparse.Namespace) -> int:
    """Sequence mode: every subject over the standard sequences of every folder; table, JSON, markdown."""
    from tqdm import tqdm

    from upscaler.bench import machine_info
    from upscaler.bench.sequence import (
        build_sequence_subjects,
        count_sequences,
        format_sequence_markdown,
        format_sequence_table,
        run_sequence_bench,
        sequence_note,
    )
    from upscaler.bench.sweep import parse_size
    from upscaler.io import write_atomic

    if args.url:
        raise ValueError("--sequences and --url are separate modes; give one of them")
    if args.plot:
        raise ValueError("--plot draws the latency sweep; sequence mode writes --json and --markdown")
    for folder in args.sequences:
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"--sequences {folder}: no such folder")
    try:
        size = parse_size(args.sequence_size)
    except ValueError as exc:
        raise ValueError(f"--sequence-size: {exc}") from None
    frames = _int_option(args.frames or "32", "--frames", 2)
    limit = None if args.limit is None else _int_option(args.limit, "--limit", 1)
    warmup = _int_option(args.sequence_warmup, "--sequence-warmup", 0)
    if frames <= warmup:
        raise ValueError(f"--frames ({frames}) must exceed --sequence-warmup ({warmup})")
    backend, precision = _one_engine(args, "sequence mode")
    kinds = _kinds(args.kinds)
    total = sum(count_sequences(folder, limit, kinds) for folder in args.sequences)  # fails early on an empty folder
    subjects = build_sequence_subjects(
        args.model, backend=backend, threads=args.threads, precision=precision, flow=args.flow
    )
    bar = tqdm(total=total * len(subjects), desc="sequences", unit="run", disable=args.no_progress or None)
    with bar:
        report = run_sequence_bench(
            args.sequences,
            subjects,
            size=size,
            frames=frames,
            limit=limit,
            warmup=warmup,
            on_step=lambda subject, sequence: bar.update(1),
            kinds=kinds,
        )
    print(format_sequence_table(report))
    print(sequence_note(report))
    machine = machine_info()
    report["settings"].update({"backend": backend, "threads": args.threads, "precision": precision, "flow": args.flow})
    report = {
        "measured": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "upscaler " + " ".join(sys.argv[1:]),
        "mode": "sequences",
        "machine": machine,
        **report,
    }
    if args.json:
        write_atomic(args.json, json.dumps(report, indent=2) + "\n")
    if args.markdown:
        write_atomic(args.markdown, format_sequence_markdown(report, machine))
    return 0


#: What clip mode compares when no --model is given.
CLIP_MODELS = ("x4-temporal", "x4-fast", "x4-quality")


def _within(source: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """The largest size of ``source``'s aspect ratio inside ``box``, never above ``source`` (clips are only
    reduced; a 480x204 clip in a 320x180 box is 320x136, not squashed to 16:9)."""
    factor = min(box[0] / source[0], box[1] / source[1], 1.0)
    return max(1, round(source[0] * factor)), max(1, round(source[1] * factor))


def _run_clip(args: argparse.Namespace) -> int:
    """Clip mode: the warping error of every subject on one clip's frames; table and JSON."""
    from tqdm import tqdm

    from upscaler.bench import machine_info
    from upscaler.bench.stability import build_clip_subjects, clip_note, format_clip_table, read_clip, run_clip
    from upscaler.bench.sweep import parse_size
    from upscaler.io import write_atomic
    from upscaler.video.probe import probe

    if args.url or args.sequences:
        raise ValueError("--clip, --sequences and --url are separate modes; give one of them")
    if args.plot or args.markdown:
        raise ValueError("clip mode writes --json only")
    info = probe(Path(args.clip))
    if len(args.size) != 1:
        raise ValueError(f"clip mode takes one --size, got {len(args.size)}")
    if args.size[0] == "source":
        size = (info.width, info.height)
    else:
        try:
            size = _within((info.width, info.height), parse_size(args.size[0]))
        except ValueError as exc:
            raise ValueError(f"--size: {exc}") from None
    frames = _int_option(args.frames or "48", "--frames", 2)
    start = _int_option(args.clip_start, "--clip-start", 0)
    backend, precision = _one_engine(args, "clip mode")
    models = list(CLIP_MODELS) if args.model == ["default"] else args.model
    subjects = build_clip_subjects(models, backend=backend, threads=args.threads, precision=precision)
    with tqdm(total=frames, desc="clip", unit="frame", disable=args.no_progress or None) as bar:
        result = run_clip(
            read_clip(args.clip, frames=frames, size=size, start=start),
            subjects,
            flow=args.clip_flow,
            on_step=lambda n: bar.update(1),
        )
    note = clip_note(result)
    print(format_clip_table(result))
    print(note)
    resized = size != (info.width, info.height)
    result["settings"].update({"backend": backend, "threads": args.threads, "precision": precision})
    report = {
        "measured": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "upscaler " + " ".join(sys.argv[1:]),
        "mode": "clip",
        "machine": machine_info(),
        "clip": {
            "path": str(args.clip),
            "codec": info.codec,
            "source": f"{info.width}x{info.height}",
            "start": start,
            "frames_asked": frames,
            "input": f"{size[0]}x{size[1]}",
            "reduced": (
                f"each decoded {info.width}x{info.height} frame area-averaged (cv2.INTER_AREA) to "
                f"{size[0]}x{size[1]} before upscaling"
                if resized
                else None
            ),
        },
        "note": note,
        **result,
    }
    if args.json:
        write_atomic(args.json, json.dumps(report, indent=2) + "\n")
    return 0


def _run_http(args: argparse.Namespace, size: tuple[int, int], concurrency: list[int]) -> int:
    """A running service; with --engine-baseline the same model in-process, interleaved round by round."""
    from upscaler.bench import machine_info
    from upscaler.bench.http import compare

    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    report = compare(
        args.url,
        args.model[0],
        size,
        concurrency=concurrency,
        requests=args.requests,
        rounds=args.rounds,
        runs=args.runs,
        backend=(args.engine or ["auto"])[0],
        threads=args.threads,
        headers=headers,
        baseline=args.engine_baseline,
    )
    direct = report["direct"]
    line = f"{size[0]}x{size[1]} rgb24 frames to {args.url}/v1/frames, model {args.model[0]}"
    if direct:
        line += (
            f"; in-process Upscaler: {direct['median_ms']:.2f} ms median, {direct['fps']:.1f} fps; "
            f"ratios are medians over {args.rounds} interleaved rounds"
        )
    print(line)
    print(
        f"{'clients':>7} {'requests':>8} {'fps':>7} {'x direct':>8} {'p50 ms':>8} {'+ms':>7} {'p95 ms':>7} "
        f"{'p99 ms':>7} {'errors':>6}  status"
    )
    for s in report["http"]:
        ratio = f"{s['throughput_ratio']:.2f}" if "throughput_ratio" in s else "-"
        extra = f"{s['median_overhead_ms']:.2f}" if "median_overhead_ms" in s else "-"
        print(
            f"{s['concurrency']:>7} {s['requests']:>8} {s['fps']:>7.1f} {ratio:>8} {s['median_ms'] or 0:>8.2f} "
            f"{extra:>7} {s['p95_ms'] or 0:>7.2f} {s['p99_ms'] or 0:>7.2f} {s['errors']:>6}  {s['status']}"
        )
    for warning in report["warnings"]:
        print(f"upscaler: warning: {warning}", file=sys.stderr)
    before, after = report["service_rss_mb"]
    if before and after:
        print(f"service resident memory: {before:.1f} MB -> {after:.1f} MB")
    if args.json:
        from upscaler.io import write_atomic

        report = {"measured": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine_info(), **report}
        write_atomic(args.json, json.dumps(report, indent=2) + "\n")
    return 0
