"""``upscaler video``: video files, folders and globs in, upscaled videos out (audio and subtitles copied)."""

from __future__ import annotations

import argparse
import glob
import json
import os
import signal
import sys
from dataclasses import asdict
from functools import partial
from pathlib import Path

from upscaler.cli.common import (
    add_batch_option,
    add_engine_options,
    add_size_options,
    add_source_option,
    earlier_output,
    output_size,
    positive_int,
    tagged_folder,
)

__all__ = ["VIDEO_SUFFIXES", "count_reused", "interrupted_line", "plan_videos", "register"]

#: Extensions taken as videos when a folder or glob is listed.
VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v", ".ts", ".mts", ".m2ts", ".flv", ".wmv", ".mpg"}
#: Containers written: an input in another container is written as Matroska.
_WRITABLE = {".mp4", ".mkv", ".mov", ".webm", ".m4v"}
#: Names that say "a file of this type", not a folder (``out.gif``). Any other name with a dot that is not a folder
#: yet (``out.xyz``) is refused too, but told how to make a folder so named (``out.xyz/``).
_FILE_TYPES = VIDEO_SUFFIXES | {".gif", ".apng", ".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff",
                                ".mp3", ".wav", ".aac", ".flac", ".ogg", ".opus", ".m4a", ".srt", ".json"}  # fmt: skip


class Terminated(KeyboardInterrupt):
    """SIGTERM: ends a run as Ctrl-C does (finished segments kept, the hint to continue), exit status 143."""


def _terminate(signum, frame) -> None:
    raise Terminated


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``video`` subcommand."""
    p = sub.add_parser(
        "video",
        help="upscale video files, folders or globs (audio and subtitles copied)",
        description="Decode, upscale in batches and encode, overlapped; audio and subtitle streams copied as they "
        "are; timestamps, rotation and colour tags kept; 10-bit stays 10-bit where the codec allows. Work goes in "
        "keyframe-aligned segments beside the output, so running the same command again continues an interrupted "
        "job; finished segments are deleted only when asked (--restart). Temporal models (--model x4-temporal, "
        "x2-temporal) take each segment as one stream, frame by frame in order: motion estimated by optical flow, "
        "zero jitter, the history reset at every segment start and at every scene cut found in the frames (so a "
        "resumed or --ray run makes the same frames); they run in fp32 and one frame at a time, so --batch-size "
        "above 1 and --precision fp16/int8 are refused.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="video files, folders or glob patterns")
    p.add_argument("-o", "--output", help="output file (one input: .mp4, .mkv, .mov, .webm, .m4v) or folder (a new "
                   "one whose name has a dot: end it with /); default: beside each input, the size in its name "
                   "(clip_x4.mp4; a folder footage/ gives footage_x4/)")  # fmt: skip
    add_engine_options(p, model_default="the 'video' alias, a model trained on compressed sources: x4-video")
    p.set_defaults(model=None)  # resolved in _run (_video_default): no manifest read to build the parser
    add_source_option(p, "each file's codec: lossless ones (FFV1, HuffYUV, raw, PNG, ...) and intermediates "
                      "(ProRes, DNxHD) are clean, the rest compressed")  # fmt: skip
    add_size_options(p)
    _add_encode_options(p)
    _add_job_options(p)
    p.set_defaults(func=_run)


def _add_encode_options(p: argparse.ArgumentParser) -> None:
    """Trimming, the encoder and how frames go to the engine."""
    trim = p.add_argument_group("trimming (default: the whole video)")
    trim.add_argument(
        "--start",
        default="0",
        metavar="TIME",
        help="start this far into the video: seconds (12.5) or [HH:]MM:SS[.mmm]; audio and subtitles are cut to match",
    )
    trim.add_argument("--duration", metavar="TIME", help="make only this much (seconds or [HH:]MM:SS[.mmm])")
    p.add_argument("--codec", default="libx264", help="encoder: libx264, libx265, libvpx-vp9, ... (default: libx264)")
    p.add_argument("--crf", type=int, default=18, help="constant quality (default: 18)")
    p.add_argument("--preset", help="encoder preset, e.g. medium, slow, ultrafast")
    p.add_argument("--pix-fmt", help="output pixel format (default: the source's where the codec allows)")
    p.add_argument(
        "--encoder-threads",
        type=_threads,
        default=None,
        metavar="{auto,N}",
        help="encoder threads (default: auto, the cores this process may use, at most 16). x264 makes the same "
        "bytes run after run at a fixed count, so the count is part of the job: an unfinished job goes on with "
        "the count that made it, on any machine, and --ray workers take the count chosen where the command runs. "
        "2 took 0.76x the time of 1 for a 720p x4-fast job on 2 cores (benchmarks/results/encoder-threads-zen3.json)",
    )
    add_batch_option(
        p,
        type=positive_int,
        default=1,
        help="frames per engine call (default: 1; single-frame models only: temporal ones take one at a time)",
    )


def _add_job_options(p: argparse.ArgumentParser) -> None:
    """Segments, resuming, outputs, reports and Ray."""
    p.add_argument("--segment-seconds", type=float, default=10.0, help="resume granularity (default: 10)")
    unfinished = p.add_mutually_exclusive_group()
    unfinished.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted job from its finished segments, made here or with --ray (also done without "
        "it when the job matches this run: same input, model, settings and engine); never discards them: a job "
        "made otherwise, or by another engine or precision, is refused (frames of two engines are never mixed)",
    )
    unfinished.add_argument(
        "--restart",
        action="store_true",
        help="discard an interrupted job's finished segments and start over",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing outputs, and discard an interrupted job this run cannot continue (made with other "
        "settings or another engine; one it can continue is continued)",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.add_argument(
        "--json",
        metavar="PATH",
        help="write a summary: per file frames (and how many were reused from an interrupted run), seconds, "
        "fps (of the frames this run made), status",
    )
    p.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="spread segments over a Ray cluster: host:port, auto (RAY_ADDRESS) or local; needs upscaler[ray]",
    )
    p.add_argument(
        "--engine-baseline",
        action="store_true",
        help="after each file, time the engine alone on its frames (same size and batch; a temporal model on 10 "
        "consecutive frames, motion estimation included): the pipeline's ratio",
    )


def _threads(text: str) -> int | None:
    """argparse type: ``auto`` (None: each job picks, ``upscaler.video.job.encoder_threads``) or a count >= 1."""
    if text.strip().lower() == "auto":
        return None
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (or auto)") from None


def _video_default() -> str:
    """The model ``upscaler video`` runs unless told: the manifest's ``video`` alias (a model trained on
    compressed sources), else the default model."""
    from upscaler.models import load_manifest

    return "video" if "video" in load_manifest()[1] else "default"


def _listing(item: str) -> tuple[list[Path], Path | None]:
    """The videos ``item`` names, and the folder they were listed from (None: a file or a glob)."""
    path = Path(item)
    if path.is_dir():
        return sorted(f for f in path.iterdir() if f.is_file() and f.suffix.lower() in VIDEO_SUFFIXES), path
    if glob.has_magic(item) and not path.exists():
        return sorted(Path(m) for m in glob.glob(item, recursive=True) if Path(m).is_file()), None
    return [path], None


def _sources(inputs: list[str]) -> tuple[list[tuple[Path, Path | None]], list[str]]:
    """Each video once, with the folder it was listed from; one error line per input that names nothing."""
    sources, errors, seen = [], [], set()
    for item in inputs:
        listed, folder = _listing(item)
        if not listed:
            errors.append(f"{item}: no video here")
        for source in listed:
            if source.resolve() not in seen:
                seen.add(source.resolve())
                sources.append((source, folder))
    return sources, errors


def _container(source: Path) -> str:
    """The output's extension for ``source``: its own where it is written, else Matroska's."""
    return source.suffix.lower() if source.suffix.lower() in _WRITABLE else ".mkv"


def _plan_beside(inputs: list[str], tag: str) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Without ``-o``: ``clip_x4.mp4`` beside ``clip.mp4``; the videos of a folder ``footage`` into
    ``footage_x4`` beside it. A pattern that matches an earlier run's outputs leaves them out."""
    sources, errors = _sources(inputs)
    named = {Path(item) for item in inputs}
    pairs = []
    for source, folder in sources:
        if folder is None and source not in named and earlier_output(source, tag, VIDEO_SUFFIXES):
            continue
        if folder is None:
            pairs.append((source, source.with_name(f"{source.stem}{tag}{_container(source)}")))
        else:
            pairs.append((source, tagged_folder(folder, tag) / f"{source.stem}{_container(source)}"))
    return pairs, errors


def plan_videos(inputs: list[str], output: str | None, tag: str = "_x4") -> tuple[list[tuple[Path, Path]], list[str]]:
    """``(source, target)`` per input video, and one error line per input that names nothing. ``output`` None:
    beside each input, its name with ``tag`` added (``_plan_beside``)."""
    if output is None:
        return _plan_beside(inputs, tag)
    out = Path(output)
    sources, errors = _sources(inputs)
    single = out.suffix.lower() in _WRITABLE and not out.is_dir() and not output.endswith(("/", os.sep))
    if single and len(sources) > 1:
        raise ValueError(f"{out}: several inputs need an output folder, not a file name")
    if out.suffix and not single and not out.is_dir() and not output.endswith(("/", os.sep)):
        folder = "" if out.suffix.lower() in _FILE_TYPES else f" (a new folder: {output}/)"
        raise ValueError(
            f"{out}: cannot write {out.suffix} files; name a {', '.join(sorted(_WRITABLE))} file (the containers "
            f"written), or a folder{folder}"
        )
    return [(source, out if single else out / f"{source.stem}{_container(source)}") for source, _ in sources], errors


def _tag(args: argparse.Namespace) -> str:
    """What an output's name gets without ``-o``: the size asked for, or the model's scale (``_x4``)."""
    from upscaler.models import get_model

    try:
        scale = get_model(args.model).scale
    except Exception:  # an unknown model fails in each job, with the engine's own message
        scale = 4
    return output_size(args).tag(scale)


def _run(args: argparse.Namespace) -> int:
    from upscaler.video.transcode import EncodeSettings

    if args.segment_seconds <= 0:
        raise ValueError(f"--segment-seconds must be positive, got {args.segment_seconds}")
    args.model = args.model or _video_default()
    args.temporal = _temporal_model(args)
    if args.json and not Path(args.json).resolve().parent.is_dir():
        raise FileNotFoundError(f"--json {args.json}: no such folder")
    pairs, errors = plan_videos(args.inputs, args.output, _tag(args))
    settings = EncodeSettings(
        codec=args.codec, crf=args.crf, preset=args.preset, pix_fmt=args.pix_fmt, threads=args.encoder_threads,
        start_s=_seconds("--start", args.start), duration_s=_duration(args.duration), **_size_settings(args),
    )  # fmt: skip
    for message in errors:
        print(f"upscaler: error: {message}", file=sys.stderr)
    todo, results = _writable(args, pairs)
    run = _run_ray if args.ray else _run_local
    plans: list = []  # every job prepared, to say what an interrupt leaves
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        results.update(zip([s for s, _ in todo], run(args, todo, settings, plans)))
    except KeyboardInterrupt as stop:  # the bars are closed by now; finished segments stay where they are
        print(interrupted_line(plans), file=sys.stderr)
        return 143 if isinstance(stop, Terminated) else 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    ordered = [results[source] for source, _ in pairs]
    for r in ordered:
        if r.status == "failed":
            print(f"upscaler: error: {r.message}", file=sys.stderr)
    _report(args, ordered, errors, settings)
    failed = errors or any(r.status == "failed" for r in ordered)
    return 1 if failed else 0


def _writable(args: argparse.Namespace, pairs: list[tuple[Path, Path]]) -> tuple[list, dict]:
    """The ``(source, target)`` pairs to make, and a ``JobResult`` for each other one: an output that is an
    input of this run or another input's output (failed), or that exists (skipped, unless ``--overwrite``)."""
    from upscaler.video.job import JobResult

    results: dict[Path, JobResult] = {}
    todo, inputs, targets = [], {source.resolve() for source, _ in pairs}, set()
    for source, target in pairs:
        if target.resolve() in inputs:
            same = target.resolve() == source.resolve()
            message = "output would overwrite the input" if same else f"{source}: output {target} is another input"
            results[source] = JobResult(str(source), str(target), "failed", message=message)
        elif target.resolve() in targets:
            message = f"{source}: output {target} is also the output of another input"
            results[source] = JobResult(str(source), str(target), "failed", message=message)
        elif target.exists() and not args.overwrite:
            results[source] = JobResult(str(source), str(target), "skipped", message="exists (use --overwrite)")
        else:
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                message = f"{target.parent}: cannot create the output folder ({exc.strerror or exc})"
                results[source] = JobResult(str(source), str(target), "failed", message=message)
                continue
            todo.append((source, target))
            targets.add(target.resolve())
    return todo, results


def _duration(text: str | None) -> float | None:
    if text is None:
        return None
    value = _seconds("--duration", text)
    if value <= 0:
        raise ValueError(f"--duration must be more than 0, got {text!r}")
    return value


def _seconds(option: str, text: str) -> float:
    """``12.5``, ``1:30`` or ``01:02:03.5`` as seconds; ``ValueError`` (one line) for anything else or negative."""
    parts = text.split(":")
    try:
        if len(parts) > 3 or any(p.strip() == "" for p in parts):
            raise ValueError
        fields = [float(p) for p in reversed(parts)]  # seconds, minutes, hours
        if any(not 0 <= f < 60 for f in fields[:-1]):  # 1:99 is no time; a leading field may be any size
            raise ValueError
        value = sum(f * 60**i for i, f in enumerate(fields))
    except ValueError:
        raise ValueError(f"{option}: expected seconds or [HH:]MM:SS[.mmm], got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise ValueError(f"{option}: a time must be 0 or more, got {text!r}")
    return value


def _size_settings(args: argparse.Namespace) -> dict:
    """The output size asked for (checked), for ``EncodeSettings``; ``--outscale`` 2 or less runs the model's
    x2 sibling where there is one (``upscaler.outsize.model_for``); with a width or height, the model asked
    for (the factor differs from file to file)."""
    from upscaler.models import get_model
    from upscaler.outsize import model_for

    size = output_size(args)
    if size.outscale is not None:
        args.model = model_for(get_model(args.model).name, size.outscale)
    return {"outscale": size.outscale, "width": size.width, "height": size.height}


def _temporal_model(args: argparse.Namespace) -> bool:
    """Whether ``--model`` is a temporal model; ``CliError`` for options it cannot honour (one line).

    An unknown model is not judged here: each file then fails with the engine's own message.
    """
    from upscaler.cli.errors import CliError
    from upscaler.models import get_model
    from upscaler.runtime.select import backends_for

    try:
        model = get_model(args.model)
    except Exception:
        return False
    if not model.temporal:
        return False
    if args.batch_size != 1:
        raise CliError(
            f"--batch-size {args.batch_size}: {model.name} is a temporal model: it takes the frames one at a time, "
            "in order (each builds on the one before); leave --batch-size out"
        )
    if args.precision not in (None, "auto", "fp32"):
        raise CliError(f"--precision {args.precision}: {model.name} is a temporal model and runs in fp32 only")
    if args.backend not in backends_for(model):
        raise CliError(
            f"--backend {args.backend}: {model.name} is a temporal model; it runs on {', '.join(backends_for(model))}"
        )
    return True


def _load(args: argparse.Namespace, model: str, *, backend: str | None = None, precision: str | None = None,
          spin: bool):  # fmt: skip
    """The upscaler of ``model``: a ``TemporalUpscaler`` for a temporal model, else an ``Upscaler``."""
    backend = backend or args.backend
    if args.temporal:
        from upscaler.video.temporal import load_temporal

        return load_temporal(model, backend, threads=args.threads, spin=spin)
    from upscaler.facade import Upscaler

    return Upscaler(model, backend, threads=args.threads, precision=precision or args.precision, spin=spin)


def _file_model(args: argparse.Namespace, source: Path) -> str:
    """The model for ``source``: ``--model``, or its x2 sibling where ``--width``/``--height`` ask this file for
    2x or less (``upscaler.outsize.model_for``, as ``--outscale`` does for every file), then that model's clean
    partner where the file's codec is clean (``--source``, ``upscaler.sources``); a change is said on stderr. A
    file that cannot be probed gets ``--model`` (and fails in its job)."""
    from upscaler.sources import clean_partner
    from upscaler.video.probe import probe

    partnered = not args.temporal and clean_partner(_model_name(args.model)) is not None
    if not partnered and not output_size(args).given:
        return args.model  # nothing to choose: no probe
    try:
        info = probe(source)
    except Exception:
        return args.model
    model = _sized_model(args, source, info.width, info.height)
    return model if args.temporal else _source_model(args, source, model, info.codec)


def _sized_model(args: argparse.Namespace, source: Path, width: int, height: int) -> str:
    """``--model``, or its x2 sibling where ``--width``/``--height`` make ``width x height`` 2x or less; says
    so, and when the size asked for is past the model's scale."""
    from upscaler.models import get_model
    from upscaler.outsize import model_for

    size = output_size(args)
    if not size.given:
        return args.model
    asked = _model_name(args.model)
    try:
        asked_scale = get_model(asked).scale
    except Exception:  # an unknown model: its job says so
        return args.model
    factor = size.factor(width, height, asked_scale)  # past MAX_FACTOR: ValueError, this file fails
    model = asked if size.outscale is not None else model_for(asked, factor)  # --outscale: chosen for all
    scale = get_model(model).scale
    if factor > scale:
        _say(args, f"{source.name}: {factor:.3g}x is past {model}'s {scale}x: the rest is bicubic interpolation "
                   "(nothing inferred there)")  # fmt: skip
    if model == asked:
        return args.model
    _say(args, f"{source.name}: {width}x{height} to {factor:.3g}x: {model} runs, {asked}'s x2 sibling")
    return model


def _source_model(args: argparse.Namespace, source: Path, model: str, codec: str) -> str:
    """``model``, or its clean partner where ``codec`` is lossless (``--source``, ``upscaler.sources``)."""
    from upscaler.sources import choose_model, clean_partner, lossy_video_codec

    asked = _model_name(model)
    if clean_partner(asked) is None:
        return model
    chosen = choose_model(asked, args.source, lossy=lossy_video_codec(codec))
    if chosen == asked:
        return model  # as given: a path stays a path
    why = "--source clean" if args.source == "clean" else f"its codec ({codec}) is lossless"
    _say(args, f"{source.name}: {why}: {chosen} runs, {asked}'s sibling for clean sources (--source compressed "
               f"runs {asked})")  # fmt: skip
    return chosen


def _say(args: argparse.Namespace, line: str) -> None:
    """A note on stderr between the progress bars (not with --quiet)."""
    if not args.quiet:
        from tqdm import tqdm

        tqdm.write(f"upscaler: {line}", file=sys.stderr)


def _unfinished(args: argparse.Namespace) -> str:
    """What to do with an interrupted job's work folder (``upscaler.video.workdir``)."""
    if args.restart:
        return "restart"
    if args.resume:
        return "resume"
    return "replace" if args.overwrite else "keep"


def count_reused(bar, frames: int) -> None:
    """Show ``frames`` reused from an earlier run on the tqdm ``bar`` without counting them in its rate.

    tqdm computes its rate from ``n - initial`` (and its smoothed one from updates since
    ``last_print_n``): reused frames raise all three, so the fps shown is this run's alone.
    """
    if frames <= 0 or bar.disable:
        return
    bar.n += frames
    bar.initial += frames
    bar.last_print_n += frames
    bar.set_postfix_str(f"{bar.initial} reused")


def _heard(plans: list, bar, plan, *, own_bar: bool = False) -> None:
    """A job is prepared: keep it for the interrupt line, tell its notes, show its reused frames on ``bar``
    (``own_bar``: the bar is this job's alone, so its total is the job's frames)."""
    from tqdm import tqdm

    plans.append(plan)
    if own_bar:
        bar.total = plan.frames or None
    for note in plan.notes:
        tqdm.write(f"upscaler: {note}", file=sys.stderr)
    count_reused(bar, plan.result.reused_frames)


def interrupted_line(plans: list) -> str:
    """What Ctrl-C leaves: the finished segments of the jobs not done, kept, and how to go on."""
    open_jobs = [p for p in plans if p.folder.is_dir()]  # a finished job's folder is gone
    finished, total = sum(p.finished for p in open_jobs), sum(len(p.segments) for p in open_jobs)
    if not finished:
        return "upscaler: interrupted before a segment was finished: run the same command again to continue"
    videos = f" of {len(open_jobs)} videos" if len(open_jobs) > 1 else ""
    return (
        f"upscaler: interrupted; {finished} of {total} segments{videos} are finished and kept: "
        "run the same command again (or add --resume) to continue"
    )


def _run_local(args: argparse.Namespace, todo: list[tuple[Path, Path]], settings, plans: list) -> list:
    from tqdm import tqdm

    from upscaler.video.job import engine_fps, failed, run_job

    upscalers: dict[str, object] = {}  # by model: a clean file may take --model's clean partner (--source)
    baselines: dict[str, object] = {}
    results = []
    overall = tqdm(total=len(todo), desc="videos", unit="file", disable=args.quiet or None, position=0)
    for source, target in todo:
        bar = tqdm(desc=source.name, unit="frame", disable=args.quiet or None, position=1, leave=False)
        try:
            model = _file_model(args, source)
            if model not in upscalers:  # idle engine threads must not spin: the decoder and encoder need the cores
                upscalers[model] = _load(args, model, spin=False)
            upscaler = upscalers[model]
            result = run_job(
                source,
                target,
                upscaler,
                settings,
                batch=args.batch_size,
                unfinished=_unfinished(args),
                segment_s=args.segment_seconds,
                on_plan=partial(_heard, plans, bar, own_bar=True),
                on_frame=bar.update,
            )
            if args.engine_baseline:
                if model not in baselines:  # the engine at its best alone: its threads may spin
                    baselines[model] = _load(args, model, backend=upscaler.engine.name,
                                             precision=upscaler.engine.precision, spin=True)  # fmt: skip
                result.engine_fps = round(engine_fps(source, baselines[model], args.batch_size), 2)
                result.ratio = round(result.fps / result.engine_fps, 3)
        except Exception as exc:  # a bad input, an encoder or file error: this file fails, the others still run
            result = failed(source, target, exc)
        finally:
            bar.close()
        results.append(result)
        overall.update(1)
    overall.close()
    return results


def _run_ray(args: argparse.Namespace, todo: list[tuple[Path, Path]], settings, plans: list) -> list:
    from tqdm import tqdm

    from upscaler.video.distributed import EngineSpec, run_on_ray
    from upscaler.video.job import failed

    groups: dict[str, list[tuple[Path, Path]]] = {}  # by model: a clean file may take the clean partner
    results: dict[Path, object] = {}
    for source, target in todo:
        try:
            groups.setdefault(_file_model(args, source), []).append((source, target))
        except Exception as exc:  # a size past the largest factor: this file fails, the others go on
            results[source] = failed(source, target, exc)
    bar = tqdm(desc=f"ray {args.ray}", unit="frame", disable=args.quiet or None)
    try:
        for model, pairs in groups.items():
            spec = EngineSpec(model, args.backend, args.precision, args.threads or 1)
            done = run_on_ray(args.ray, pairs, spec, settings, batch=args.batch_size, unfinished=_unfinished(args),
                              segment_s=args.segment_seconds, on_plan=partial(_heard, plans, bar),
                              on_frames=bar.update)  # fmt: skip
            results.update(zip([source for source, _ in pairs], done))
    finally:
        bar.close()
    return [results[source] for source, _ in todo]


def _temporal_settings(args: argparse.Namespace) -> dict | None:
    """How a temporal model was fed (None: a single-frame model)."""
    if not getattr(args, "temporal", False):
        return None
    from upscaler.video.temporal import temporal_identity

    return {**temporal_identity(), "resets": "every segment start and every scene cut"}


def _model_name(model: str) -> str:
    """The model an alias (``video``, ``default``) stands for; an unknown name as given."""
    from upscaler.models import get_model

    try:
        return get_model(model).name
    except Exception:
        return model


def _report(args: argparse.Namespace, results: list, errors: list[str], settings) -> None:
    if args.json:
        from upscaler.io import write_atomic
        from upscaler.sysinfo import machine_info

        summary = {
            "machine": machine_info(),
            "settings": {
                **asdict(settings),
                "model": _model_name(args.model),
                "backend": args.backend,
                "batch": args.batch_size,
                "threads": args.threads,
                "precision": args.precision,
                "ray": args.ray,
                "temporal": _temporal_settings(args),
            },
            "files": [asdict(r) for r in results],
            "errors": errors,
        }
        write_atomic(args.json, json.dumps(summary, indent=2) + "\n")
    if not args.quiet:
        for r in results:
            line = f"{r.status:>7}  {r.input} -> {r.output}"
            if r.status == "done":
                line += f"  {r.frames - r.reused_frames} frames in {r.seconds:.1f} s ({r.fps:.1f} fps)"
                if r.resumed_segments:  # not in the fps: an earlier run made them
                    line += f", {r.reused_frames} more reused from {r.resumed_segments} of {r.segments} segments"
                if r.cuts:
                    line += f", history reset at {r.cuts} scene cut{'s' if r.cuts > 1 else ''}"
                line += f"; engine alone {r.engine_fps:.1f} fps, ratio {r.ratio:.2f}" if r.engine_fps else ""
            elif r.message:
                line += f"  ({r.message})"
            print(line)
