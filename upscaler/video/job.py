"""One video file, start to finish: plan segments, upscale the missing ones, assemble, rename into place.

Work happens in a folder beside the target (``.<name>.upscaler/``): its
``job.json`` records the input (path, size, modification time), the model,
the encoding settings and the segment plan, and its ``engine.json`` the
engine and precision that actually made the finished segments
(``provenance``); each finished segment is renamed into place there only
when complete, so a crash (even ``kill -9``) leaves only whole segments
behind. A later run reuses them when ``job.json`` matches and the engine
does too, whether they were made here or on Ray; the result is the same an
uninterrupted run writes. A job that does not match is refused rather than
deleted unless the run was asked to discard it (``workdir``). The final
file is assembled under a temporary name and renamed onto the target at the
end; the work folder is removed then.

``prepare_job`` and ``finish_job`` are the two ends; the segments in
between run here (``run_job``) or on a Ray cluster (``distributed``).
Single-frame models (``Upscaler``) take the frames in batches; temporal ones
(``TemporalUpscaler``) one at a time, one history per segment
(``upscaler.video.temporal``).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from upscaler.video.assemble import assemble
from upscaler.video.probe import (
    UNTIMED_CONTAINERS,
    VideoError,
    VideoInfo,
    constant_rate,
    display_times,
    packet_times,
    probe,
)
from upscaler.video.provenance import MadeBy, MixedEngines, check_same, write_made_by
from upscaler.video.segments import Segment, plan_segments, trim_segments
from upscaler.video.temporal import SegmentStream, frame_size_check, temporal_identity
from upscaler.video.transcode import EncodeSettings, upscale_segment
from upscaler.video.workdir import Unfinished, claim, recorded_encoding

__all__ = [
    "MAX_ENCODER_THREADS",
    "JobPlan",
    "JobResult",
    "Unfinished",
    "check_batch",
    "engine_fps",
    "failed",
    "finish_job",
    "job_identity",
    "plan_job",
    "prepare_job",
    "run_job",
    "temporal_notes",
    "work_dir",
]

SEGMENT_SECONDS = 10.0
#: 2: the engine is recorded per work folder (engine.json), not in job.json; 3: segment files keep their
#: timestamps exactly (older ones are up to half a millisecond off, so they are not joined with newer ones)
JOB_VERSION = 4  # 4: the trim and output size joined the encode settings


@dataclass
class JobResult:
    """What happened to one input (the JSON summary's entry)."""

    input: str
    output: str
    status: str  #: done, skipped or failed
    frames: int = 0  #: in the output, reused ones included
    seconds: float = 0.0
    fps: float = 0.0  #: frames this run upscaled per second (reused ones not counted)
    segments: int = 0
    resumed_segments: int = 0  #: finished by an earlier run and reused
    reused_frames: int = 0  #: the frames of those
    cuts: int | None = None  #: temporal models: scene cuts found (each reset the history) in the frames this run made
    model: str = ""  #: the model that made the frames (x4-video's clean partner for a clean source: --source)
    engine: str = ""  #: the engine that actually made the frames (not the one asked for)
    precision: str = ""  #: the precision it actually ran in
    engine_busy: float = 0.0  #: engine time / wall time: how little the engine waited for I/O
    encoder_threads: int = 0  #: the encoder's thread count (--encoder-threads; auto: this job's, resolved)
    engine_fps: float | None = None  #: the raw engine on this video's frames, same size and batch (--engine-baseline)
    ratio: float | None = None  #: fps / engine_fps
    message: str = ""


@dataclass
class JobPlan:
    """A prepared job: what is done already and what is left."""

    source: Path
    target: Path
    info: VideoInfo
    folder: Path
    segments: list[Segment]
    retime: list[int] | None  #: display timestamps for containers without them (one segment)
    result: JobResult
    made_by: MadeBy | None = None  #: the engine of the finished segments (None: none finished yet)
    window: tuple[float, float | None] | None = None  #: trimmed: the source seconds kept (assemble's window)
    notes: list[str] = field(default_factory=list)  #: what the user should hear (an earlier job reused, discarded)
    frames: int = 0  #: the frames the output will hold, trimmed (0: unknown), for a progress bar's total
    settings: EncodeSettings | None = None  #: the encoding the segments are made with (an automatic count resolved)
    started: float = field(default_factory=time.perf_counter)
    engine_s: float = 0.0

    def path(self, segment: Segment) -> Path:
        """Where a finished segment lives."""
        return self.folder / f"{segment.name}.mp4"

    def part(self, segment: Segment) -> Path:
        """Where a segment is written until it is complete."""
        return self.folder / f"{segment.name}.part.mp4"

    @property
    def missing(self) -> list[Segment]:
        """The segments not finished yet."""
        return [s for s in self.segments if not self.path(s).is_file()]

    @property
    def finished(self) -> int:
        """How many segments are finished (by this run or an earlier one)."""
        return len(self.segments) - len(self.missing)

    def done(self, segment: Segment, frames: int, engine_s: float, made_by: MadeBy) -> None:
        """Record a segment whose complete file is at ``part(segment)``: rename it into place.

        ``MixedEngines`` (the partial file removed, the finished segments kept) if ``made_by``
        differs from the engine of the segments finished before.
        """
        try:
            check_same(self.made_by, made_by)
        except MixedEngines:
            self.part(segment).unlink(missing_ok=True)  # it can never join this output
            raise
        if self.made_by is None:
            # recorded before the first rename: a finished segment always has its engine on record
            write_made_by(self.folder, made_by)
            self.made_by = made_by
        self.part(segment).replace(self.path(segment))
        self.result.frames += frames
        self.engine_s += engine_s


def failed(source: Path, target: Path, exc: BaseException) -> JobResult:
    """The result of a file that failed: the error's first line, naming the file."""
    cause = getattr(exc, "cause", None) or exc  # a Ray task error carries the worker's exception
    lines = (str(cause) or type(cause).__name__).strip().splitlines()
    message = lines[0] if lines else type(cause).__name__
    if str(source) not in message:
        message = f"{source}: {message}"
    return JobResult(str(source), str(target), "failed", message=message)


def work_dir(target: Path) -> Path:
    """Where a job keeps its segments: beside the target, hidden."""
    return target.with_name(f".{target.name}.upscaler")


def prepare_job(
    source: Path,
    target: Path,
    identity: dict,
    settings: EncodeSettings,
    *,
    unfinished: Unfinished = "keep",
    segment_s: float = SEGMENT_SECONDS,
    made_by: MadeBy | None = None,
    check: Callable[[Path, VideoInfo], None] | None = None,
    auto_threads: int | None = None,
) -> JobPlan:
    """Probe, plan segments, set up the work folder, reusing the finished segments of a matching earlier job.

    ``identity``: what the frames depend on besides the input, the encoder
    and the engine (the model); a reused job must match it. ``unfinished``:
    what to do with an earlier job that does not match (``workdir``): by
    default it is refused, nothing deleted. ``made_by``: the engine this run
    will use, when known before any segment is made (a local run; Ray
    workers tell theirs with each segment): ``MixedEngines``, nothing
    touched, if the finished segments were made by another. ``check``:
    raises ``VideoError`` for a probed input the engine cannot take, before
    anything is written.
    """
    info = probe(source)
    if not info.frames and not info.duration_s:
        raise VideoError(f"{source}: video stream is empty")
    settings = encoder_threads(settings, work_dir(target), unfinished=unfinished, auto=auto_threads)
    if check is not None:
        check(source, info)
    stamps, keys = packet_times(source)
    retime = None
    if info.container.split(",")[0] in UNTIMED_CONTAINERS:  # no presentation order in the file: one segment
        retime = stamps = display_times(source, info.time_base, info.rate)
        segments = plan_segments([], info.time_base, segment_s)
    else:
        segments = plan_segments(keys, info.time_base, segment_s)
    info = replace(info, constant_rate=constant_rate(stamps, info.time_base, info.rate))
    window = _window(stamps, info.time_base, settings)
    if window is not None:
        segments = trim_segments(segments, *window)
        if not segments or window[0] > max(stamps, default=window[0]):
            raise VideoError(f"{source}: --start {settings.start_s:g} s is at or past the video's last frame")
    stat = source.stat()
    fingerprint = {
        "version": JOB_VERSION,
        "input": str(source.resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        **identity,
        "encode": asdict(settings),
        "segment_s": segment_s,
        "segments": [[s.start, s.end] for s in segments],
    }
    folder = work_dir(target)
    kept = claim(folder, fingerprint, target, unfinished=unfinished, made_by=made_by)
    plan = JobPlan(source, target, info, folder, segments, retime, JobResult(str(source), str(target), "done"))
    plan.settings, plan.result.encoder_threads = settings, settings.threads
    if window is not None:
        plan.window = (
            float(window[0] * info.time_base),
            None if window[1] is None else float(window[1] * info.time_base),
        )
    plan.made_by, plan.notes = kept.made_by, kept.notes
    plan.frames = _kept_frames(stamps, window) if stamps else info.frames  # a packet per frame
    plan.result.segments = len(segments)
    for segment in segments:
        if plan.path(segment).is_file():
            plan.result.resumed_segments += 1
            plan.result.reused_frames += _count_frames(plan.path(segment))
    plan.result.frames = plan.result.reused_frames
    return plan


def _window(stamps: list[int], time_base, settings: EncodeSettings) -> tuple[int, int | None] | None:
    """The frames kept, in the stream's time base, from ``start_s``/``duration_s`` counted from the first frame;
    None when nothing is trimmed."""
    if settings.start_s == 0 and settings.duration_s is None:
        return None
    first = min(stamps, default=0)
    start = first + round(settings.start_s / time_base)
    end = None if settings.duration_s is None else start + round(settings.duration_s / time_base)
    return start, end


#: The most encoder threads an automatic count takes: x264 gains little past it, and each costs memory.
MAX_ENCODER_THREADS = 16


def encoder_threads(settings: EncodeSettings, folder: Path, *, unfinished: Unfinished = "keep",
                    auto: int | None = None) -> EncodeSettings:  # fmt: skip
    """``settings`` with an automatic thread count (None) made a number: that of the unfinished job in
    ``folder`` when it was encoded as asked here otherwise (not with ``restart``), so a resumed job goes on
    with the count that made its segments, on any machine; else ``auto``, by default the cores this process
    may use (at most ``MAX_ENCODER_THREADS``). x264's bytes depend on the count, not on the machine."""
    if settings.threads is not None:
        return settings
    from upscaler.sysinfo import cpu_count

    recorded = recorded_encoding(folder) if unfinished != "restart" else {}
    count = recorded.get("threads")
    if isinstance(count, int) and count > 0 and recorded == asdict(replace(settings, threads=count)):
        return replace(settings, threads=count)
    return replace(settings, threads=auto or min(cpu_count(), MAX_ENCODER_THREADS))


def _kept_frames(stamps: list[int], window: tuple[int, int | None] | None) -> int:
    """How many of the frames at ``stamps`` a trim ``window`` (``_window``; None: all) keeps."""
    start, end = window or (min(stamps), None)
    return sum(1 for t in stamps if t >= start and (end is None or t < end))


def finish_job(plan: JobPlan) -> JobResult:
    """Assemble the finished segments into the target (atomically) and remove the work folder."""
    if plan.missing:
        raise VideoError(f"{plan.source}: {len(plan.missing)} segment(s) not finished")
    if plan.result.frames == 0:
        raise VideoError(f"{plan.source}: no frame could be decoded")
    partial = plan.target.with_name(f".{plan.target.stem}.part{plan.target.suffix}")
    try:
        assemble(plan.info, [plan.path(s) for s in plan.segments], partial, window=plan.window)
        partial.replace(plan.target)
    finally:
        partial.unlink(missing_ok=True)
    shutil.rmtree(plan.folder, ignore_errors=True)
    result = plan.result
    if plan.made_by is not None:
        result.engine, result.precision = plan.made_by.engine, plan.made_by.precision
    result.seconds = round(time.perf_counter() - plan.started, 3)
    made = result.frames - result.reused_frames  # frames reused from an earlier run took no time here
    result.fps = round(made / result.seconds, 2) if result.seconds else 0.0
    result.engine_busy = round(plan.engine_s / result.seconds, 3) if result.seconds else 0.0
    return result


def job_identity(model) -> dict:
    """What a job's frames depend on besides the input, the encoder and the engine, from a model descriptor:
    its name, and for a temporal model how it is fed (motion estimated, zero jitter, the cut detector).

    The engine and precision are checked per segment instead (``provenance``): a Ray driver cannot know them.
    """
    identity = {"model": model.name}
    if model.temporal:
        identity["temporal"] = temporal_identity()
    return identity


def identity_of(upscaler) -> dict:
    """``job_identity`` of a loaded ``Upscaler`` or ``TemporalUpscaler``."""
    return job_identity(upscaler.model)


def check_batch(model, batch: int) -> None:
    """``ValueError`` for a batch a temporal model cannot take (it takes one frame at a time, in order)."""
    if model.temporal and batch != 1:
        raise ValueError(f"temporal models take one frame at a time, in order; batch must be 1, got {batch}")


def plan_job(model, source: Path, target: Path, identity: dict, settings: EncodeSettings, *,
             unfinished: Unfinished = "keep", segment_s: float = SEGMENT_SECONDS,
             made_by: MadeBy | None = None, auto_threads: int | None = None) -> JobPlan:  # fmt: skip
    """``prepare_job`` for ``model`` (a ``ModelDescriptor``): for a temporal one, the output size checked
    before any work, its notes added and its cut count started (what the local and the Ray runs share)."""
    check = frame_size_check(model.scale) if model.temporal else None
    plan = prepare_job(source, target, identity, settings, unfinished=unfinished, segment_s=segment_s,
                       made_by=made_by, check=check, auto_threads=auto_threads)  # fmt: skip
    plan.result.model = model.name
    if model.temporal:
        temporal_notes(plan)
        plan.result.cuts = 0
    return plan


def temporal_notes(plan: JobPlan) -> None:
    """Add what a user of a temporal model should know about this input to ``plan.notes``."""
    if plan.info.bit_depth > 8:
        plan.notes.append(
            f"{plan.source}: temporal models take 8-bit frames: this {plan.info.bit_depth}-bit video is upscaled "
            f"from 8 bits (the output keeps its pixel format)"
        )


def run_job(
    source: Path,
    target: Path,
    upscaler,
    settings: EncodeSettings,
    *,
    batch: int = 1,
    unfinished: Unfinished = "keep",
    segment_s: float = SEGMENT_SECONDS,
    on_plan: Callable[[JobPlan], None] | None = None,
    on_frame: Callable[[int], None] | None = None,
) -> JobResult:
    """Upscale ``source`` into ``target`` in this process; ``VideoError`` for inputs that cannot be done.

    ``upscaler``: an ``Upscaler`` (frames in batches of ``batch``) or a ``TemporalUpscaler`` (one frame at a
    time, ``batch`` 1; a fresh history at each segment start and scene cut). ``on_plan`` hears the prepared
    job (frames reused, notes) before any frame is made; ``on_frame`` each frame made.
    """
    temporal = upscaler.model.temporal
    check_batch(upscaler.model, batch)
    if not temporal:
        upscaler.batch_size = max(upscaler.batch_size, batch)
    made_by = MadeBy.of(upscaler)
    plan = plan_job(upscaler.model, source, target, identity_of(upscaler), settings, unfinished=unfinished,
                    segment_s=segment_s, made_by=made_by)  # fmt: skip
    if on_plan:
        on_plan(plan)
    for segment in plan.missing:
        engine = SegmentStream(upscaler) if temporal else upscaler  # a fresh history for every segment
        stats = upscale_segment(
            plan.info, segment, engine, plan.part(segment), plan.settings, batch=batch, on_frame=on_frame,
            retime=plan.retime,
        )  # fmt: skip
        plan.done(segment, stats.frames, stats.engine_s, made_by)
        if temporal:
            plan.result.cuts += len(engine.cuts)
    return finish_job(plan)


def engine_fps(source: Path, upscaler, batch: int, calls: int = 10) -> float:
    """Frames per second of the engine alone on ``batch`` real frames of ``source`` (prepared as the pipeline does).

    A ``TemporalUpscaler`` upscales ``calls`` consecutive frames one after the other instead (motion estimation
    included, as in the pipeline), after one frame to warm up.
    """
    from upscaler import pipeline
    from upscaler.video.probe import open_input

    temporal = upscaler.model.temporal
    wanted = calls + 1 if temporal else batch
    with open_input(source) as container:
        stream = container.streams.video[0]
        frames = []
        for frame in container.decode(stream):
            deep = frame.format.components[0].bits > 8 and not temporal
            frames.append(frame.to_ndarray(format="rgb48le" if deep else "rgb24"))
            if len(frames) == wanted:
                break
    if temporal:
        return _temporal_fps(upscaler, frames)
    frames += [frames[-1]] * (batch - len(frames))
    prepared = pipeline.color_batch(frames)
    upscaler.infer(prepared)  # warm-up
    started = time.perf_counter()
    for _ in range(calls):
        upscaler.infer(prepared)
    return batch * calls / (time.perf_counter() - started)


def _temporal_fps(upscaler, frames: list) -> float:
    upscaler.reset()
    upscaler.upscale(frames[0])  # warm-up, and the first frame of the stream
    started = time.perf_counter()
    for frame in frames[1:]:
        upscaler.upscale(frame)
    seconds = time.perf_counter() - started
    upscaler.reset()
    return (len(frames) - 1) / seconds if len(frames) > 1 else 0.0


def _count_frames(path: Path) -> int:
    from upscaler.video.probe import open_input

    with open_input(path) as container:
        return sum(1 for p in container.demux(container.streams.video[0]) if p.size)
