"""Scale-out on Ray: every missing segment of every video is a Ray task; the driver joins them in order.

Workers read the inputs by path (so inputs must be on storage every worker
sees) and send each encoded segment back as bytes, so outputs need no shared
storage: the driver writes segments into the same work folders a local run
uses, which keeps ``--resume`` and the atomic final rename as they are. Each
worker process loads the engine once and keeps it, and says with every
segment which engine and precision it actually ran: workers choose on their
own machines, and a video whose segments would come from two engines fails
(``provenance``) instead of mixing them. A temporal model's history lives in
one segment (``upscaler.video.temporal``), so a worker takes whole segments
and starts each from a fresh history, as a local run does. Ray is imported
only here, and only when ``--ray`` is given.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from upscaler.video.job import (
    JobPlan,
    JobResult,
    Unfinished,
    check_batch,
    failed,
    finish_job,
    job_identity,
    plan_job,
)
from upscaler.video.provenance import MadeBy
from upscaler.video.segments import Segment
from upscaler.video.temporal import SegmentStream
from upscaler.video.transcode import EncodeSettings, upscale_segment

__all__ = ["RAY_ENCODER_THREADS", "EngineSpec", "connect_ray", "run_on_ray"]

#: A segment task's encoder threads unless asked (``--encoder-threads auto``): the tasks already fill the
#: cluster's cores, one per ``--threads``, so a task's encoder takes few (the count of a job being continued
#: is kept all the same).
RAY_ENCODER_THREADS = 2


@dataclass(frozen=True)
class EngineSpec:
    """How workers build their ``Upscaler`` or ``TemporalUpscaler`` (names, not objects: it travels to other
    machines)."""

    model: str
    backend: str = "auto"
    precision: str | None = None
    threads: int = 1  #: engine threads per task (and the CPUs each task asks Ray for)

    def identity(self) -> dict:
        """What the job's frames depend on besides input, encoder and engine: as ``job.identity_of`` says locally."""
        return job_identity(self.descriptor())

    def descriptor(self):
        """The model's descriptor."""
        from upscaler.models import get_model

        return get_model(self.model)

    @property
    def temporal(self) -> bool:
        """Whether the model is a temporal one (a ``TemporalUpscaler`` per worker, one frame at a time)."""
        return self.descriptor().temporal


_WORKER_UPSCALERS: dict[EngineSpec, object] = {}


def _worker_upscaler(spec: EngineSpec):
    if spec not in _WORKER_UPSCALERS:
        if spec.temporal:  # fp32 only: the driver refused any other precision
            from upscaler.video.temporal import load_temporal

            _WORKER_UPSCALERS[spec] = load_temporal(spec.model, spec.backend, threads=spec.threads)
        else:
            from upscaler.facade import Upscaler

            _WORKER_UPSCALERS[spec] = Upscaler(
                spec.model, spec.backend, threads=spec.threads, precision=spec.precision, spin=False
            )
    return _WORKER_UPSCALERS[spec]


def upscale_remote(
    info, segment: Segment, spec: EngineSpec, settings: EncodeSettings, batch: int, retime
) -> tuple[bytes, int, float, MadeBy, int]:
    """The Ray task: one segment, encoded, returned as ``(bytes, frames, engine seconds, engine used, cuts)``
    (cuts: the scene cuts a temporal model reset its history at; 0 for single-frame models)."""
    upscaler = _worker_upscaler(spec)
    if spec.temporal:
        engine = SegmentStream(upscaler)  # the segment's own history, as in a local run
    else:
        upscaler.batch_size = max(upscaler.batch_size, batch)
        engine = upscaler
    with tempfile.TemporaryDirectory(prefix="upscaler-segment-") as work:
        path = Path(work) / "segment.mp4"
        stats = upscale_segment(info, segment, engine, path, settings, batch=batch, retime=retime)
        cuts = len(engine.cuts) if spec.temporal else 0
        return path.read_bytes(), stats.frames, stats.engine_s, MadeBy.of(upscaler), cuts


def connect_ray(address: str):
    """The ``ray`` module, connected to the cluster at ``address`` ("local": a Ray started here), once per process
    (``video --ray`` and ``serve --ray``)."""
    try:
        import ray
    except ImportError:
        raise RuntimeError("--ray needs Ray: pip install 'upscaler[ray]'") from None
    if not ray.is_initialized():
        ray.init(
            address=None if address == "local" else address,
            ignore_reinit_error=True,
            log_to_driver=False,
            logging_level="ERROR",
            include_dashboard=False if address == "local" else None,
        )
    return ray


def run_on_ray(
    address: str,
    pairs: Sequence[tuple[Path, Path]],
    spec: EngineSpec,
    settings: EncodeSettings,
    *,
    batch: int = 1,
    unfinished: Unfinished = "keep",
    segment_s: float = 10.0,
    on_plan: Callable[[JobPlan], None] | None = None,
    on_frames: Callable[[int], None] | None = None,
) -> list[JobResult]:
    """Upscale every ``(source, target)`` on the cluster at ``address`` (``auto``, ``host:port`` or ``local``).

    ``on_plan`` hears each prepared job (frames reused, notes) before its segments go out; ``on_frames`` the
    frames of each segment made.
    """
    check_batch(spec.descriptor(), batch)
    ray = connect_ray(address)
    task = ray.remote(num_cpus=spec.threads)(upscale_remote)
    results: dict[Path, JobResult] = {}
    plans: dict[Path, JobPlan] = {}
    pending: dict = {}
    for source, target in pairs:
        try:
            plan = plan_job(spec.descriptor(), source, target, spec.identity(), settings, unfinished=unfinished,
                            segment_s=segment_s, auto_threads=RAY_ENCODER_THREADS)  # fmt: skip
        except Exception as exc:  # this file fails, the others go on
            results[source] = failed(source, target, exc)
            continue
        plans[source] = plan
        if on_plan:
            on_plan(plan)
        for segment in plan.missing:
            ref = task.remote(plan.info, segment, spec, plan.settings, batch, plan.retime)  # the count resolved here
            pending[ref] = (plan, segment)
    for source, plan in plans.items():
        if not plan.missing:
            results[source] = _finish(plan)
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            plan, segment = pending.pop(ref)
            if plan.source in results:  # the file failed already
                continue
            try:
                data, frames, engine_s, made_by, cuts = ray.get(ref)
                plan.part(segment).write_bytes(data)
                plan.done(segment, frames, engine_s, made_by)  # refuses another engine's frames
                if plan.result.cuts is not None:  # a temporal model's: plan_job started the count
                    plan.result.cuts += cuts
                if on_frames:
                    on_frames(frames)
            except Exception as exc:  # a worker's error or another engine: this file fails
                results[plan.source] = failed(plan.source, plan.target, exc)
                _cancel(ray, pending, plan)
                continue
            if not plan.missing:
                results[plan.source] = _finish(plan)
    return [results[source] for source, _ in pairs]


def _cancel(ray, pending: dict, plan: JobPlan) -> None:
    """Stop and forget the tasks of a file that failed: the cluster's time goes to the other files."""
    for ref, (other, _) in list(pending.items()):
        if other is plan:
            del pending[ref]
            ray.cancel(ref)


def _finish(plan: JobPlan) -> JobResult:
    try:
        return finish_job(plan)
    except Exception as exc:  # assembly failed: this file fails
        return failed(plan.source, plan.target, exc)
