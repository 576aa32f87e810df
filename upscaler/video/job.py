"""One video file, start to finish: plan segments, upscale the missing ones, assemble, rename into place.

Work happens in a folder beside the target (``.<name>.upscaler/``): its
``job.json`` records the input (path, size, modification time), the model,
engine, precision and encoding settings and the segment plan; each finished
segment is renamed into place there only when complete, so a crash (even
``kill -9``) leaves only whole segments behind. ``resume=True`` reuses them
when ``job.json`` matches; the result is the same bytes an uninterrupted
run writes. The final file is assembled under a temporary name and renamed
onto the target at the end; the work folder is removed then.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from upscaler.video.assemble import assemble
from upscaler.video.probe import UNTIMED_CONTAINERS, VideoError, display_times, keyframes, probe
from upscaler.video.segments import plan_segments
from upscaler.video.transcode import EncodeSettings, upscale_segment

__all__ = ["JobResult", "engine_fps", "run_job", "work_dir"]

SEGMENT_SECONDS = 10.0
JOB_VERSION = 1


@dataclass
class JobResult:
    """What happened to one input (the JSON summary's entry)."""

    input: str
    output: str
    status: str  #: done, skipped or failed
    frames: int = 0
    seconds: float = 0.0
    fps: float = 0.0
    segments: int = 0
    resumed_segments: int = 0
    engine_busy: float = 0.0  #: engine time / wall time: how little the engine waited for I/O
    engine_fps: float | None = None  #: the raw engine on this video's frames, same size and batch (--engine-baseline)
    ratio: float | None = None  #: fps / engine_fps
    message: str = ""


def work_dir(target: Path) -> Path:
    """Where a job keeps its segments: beside the target, hidden."""
    return target.with_name(f".{target.name}.upscaler")


def _fingerprint(source: Path, upscaler, settings: EncodeSettings, batch: int, segment_s: float) -> dict:
    stat = source.stat()
    return {
        "version": JOB_VERSION,
        "input": str(source.resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "model": upscaler.model.name,
        "engine": upscaler.engine.name,
        "precision": upscaler.engine.precision,
        "encode": asdict(settings),
        "segment_s": segment_s,
    }


def run_job(
    source: Path,
    target: Path,
    upscaler,
    settings: EncodeSettings,
    *,
    batch: int = 1,
    resume: bool = False,
    segment_s: float = SEGMENT_SECONDS,
    on_start: Callable[[int], None] | None = None,
    on_frame: Callable[[int], None] | None = None,
) -> JobResult:
    """Upscale ``source`` into ``target``; ``VideoError`` for inputs that cannot be done (one line)."""
    started = time.perf_counter()
    info = probe(source)
    if not info.frames and not info.duration_s:
        raise VideoError(f"{source}: video stream is empty")
    upscaler.batch_size = max(upscaler.batch_size, batch)
    fingerprint = _fingerprint(source, upscaler, settings, batch, segment_s)
    folder = work_dir(target)
    job_file = folder / "job.json"
    previous = json.loads(job_file.read_text()) if job_file.is_file() else None
    retime = None
    if info.container.split(",")[0] in UNTIMED_CONTAINERS:  # no presentation order in the file: one segment
        retime = display_times(source, info.time_base, info.rate)
        plan = plan_segments([], info.time_base, segment_s)
    else:
        plan = plan_segments(keyframes(source), info.time_base, segment_s)
    fingerprint["segments"] = [[s.start, s.end] for s in plan]
    if previous is not None and (not resume or previous != fingerprint):
        if resume:
            raise VideoError(
                f"{target}: the unfinished job there was made with other settings or another input; "
                f"run without --resume to start over"
            )
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if previous is None or not resume:
        job_file.write_text(json.dumps(fingerprint, indent=2))
    if on_start:
        on_start(info.frames)
    result = JobResult(str(source), str(target), "done", segments=len(plan))
    engine_s = 0.0
    paths = []
    for segment in plan:
        path = folder / f"{segment.name}.mp4"
        paths.append(path)
        if path.is_file():
            result.resumed_segments += 1
            result.frames += _count_frames(path)
            if on_frame:
                on_frame(_count_frames(path))
            continue
        part = folder / f"{segment.name}.part.mp4"
        stats = upscale_segment(info, segment, upscaler, part, settings, batch=batch, on_frame=on_frame, retime=retime)
        part.replace(path)
        result.frames += stats.frames
        engine_s += stats.engine_s
    if result.frames == 0:
        raise VideoError(f"{source}: no frame could be decoded")
    partial = target.with_name(f".{target.stem}.part{target.suffix}")
    try:
        assemble(info, paths, partial)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)
    result.seconds = round(time.perf_counter() - started, 3)
    result.fps = round(result.frames / result.seconds, 2) if result.seconds else 0.0
    result.engine_busy = round(engine_s / result.seconds, 3) if result.seconds else 0.0
    return result


def _count_frames(path: Path) -> int:
    from upscaler.video.probe import open_input

    with open_input(path) as container:
        return sum(1 for p in container.demux(container.streams.video[0]) if p.size)


def engine_fps(source: Path, upscaler, batch: int, calls: int = 10) -> float:
    """Frames per second of the engine alone on ``batch`` real frames of ``source`` (prepared as the pipeline does)."""
    import numpy as np

    from upscaler import pipeline
    from upscaler.video.probe import open_input

    with open_input(source) as container:
        stream = container.streams.video[0]
        frames = []
        for frame in container.decode(stream):
            deep = frame.format.components[0].bits > 8
            frames.append(frame.to_ndarray(format="rgb48le" if deep else "rgb24"))
            if len(frames) == batch:
                break
    frames += [frames[-1]] * (batch - len(frames))
    prepared = np.stack([pipeline.color_input(f, pipeline.analyse(f)) for f in frames])
    upscaler.infer(prepared)  # warm-up
    started = time.perf_counter()
    for _ in range(calls):
        upscaler.infer(prepared)
    return batch * calls / (time.perf_counter() - started)
