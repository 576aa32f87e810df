"""Dynamic micro-batching: compatible requests share one engine call.

Requests carry a key (model, shape, sample type); only requests with equal
keys are batched. One engine thread takes the group whose oldest request has
waited longest, once that group is full (``max_batch_size``) or its oldest
request has waited ``max_delay_s``, and runs it. The thread picks its next
batch itself the moment one finishes, so a busy event loop (parsing and
answering other requests) never leaves the engine idle; results go back to
the loop with ``call_soon_threadsafe``. While a batch runs, new requests
gather, so batches grow with load. The queue is bounded: past ``max_queue``
requests (waiting or running) ``submit`` raises :class:`QueueFull` at once.
A request not answered within its deadline raises :class:`DeadlineExceeded`;
a request whose caller is cancelled (client gone, shutdown) is likewise taken
out of the queue if it had not started: nobody would read its result. Jobs
submitted ``alone`` (the tiles of a large image) never wait for company and
run in their own call, so a large image's tiles take turns with other
requests, oldest first, instead of holding the engine for the whole image.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BatchInfo", "Batcher", "DeadlineExceeded", "QueueFull"]


class QueueFull(RuntimeError):
    """Too many requests are waiting: try again later (HTTP 503)."""


class DeadlineExceeded(TimeoutError):
    """The request was not answered in time (HTTP 504)."""


@dataclass(frozen=True)
class BatchInfo:
    """How one request was served."""

    batch_size: int  #: requests in its engine call
    queue_s: float  #: waiting before the call started
    compute_s: float  #: the call itself


@dataclass(eq=False)  # identity: jobs hold frames, and `job in group` must not compare them
class _Job:
    key: Hashable
    item: Any
    future: asyncio.Future
    alone: bool = False  #: runs in a call of its own, at once (a tile: never batched, never delayed)
    queued: float = field(default_factory=time.perf_counter)
    abandoned: bool = False  #: its caller gave up (deadline, cancelled): nobody reads the result


RunBatch = Callable[[Hashable, Sequence[Any]], Sequence[Any]]


class Batcher:
    """Gathers ``submit``-ted items by key and runs ``run_batch(key, items) -> results`` in its own thread."""

    def __init__(
        self,
        run_batch: RunBatch,
        *,
        max_batch_size: int = 4,
        max_delay_s: float = 0.002,
        max_queue: int = 64,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        self.run_batch = run_batch
        self.max_batch_size, self.max_delay_s, self.max_queue = max_batch_size, max_delay_s, max_queue
        self.on_batch = on_batch
        self._groups: dict[Hashable, list[_Job]] = {}  # guarded by _cond
        self._running = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False

    @property
    def waiting(self) -> int:
        """Requests queued, not yet running."""
        with self._cond:
            return sum(len(jobs) for jobs in self._groups.values())

    @property
    def load(self) -> int:
        """Requests queued or running: what ``max_queue`` bounds."""
        with self._cond:
            return self._load()

    def _load(self) -> int:  # with ``_cond`` held
        return sum(len(jobs) for jobs in self._groups.values()) + self._running

    def start(self) -> None:
        """Start the engine thread; results are delivered on the running event loop."""
        if self._thread is None:
            self._loop = asyncio.get_running_loop()
            self._thread = threading.Thread(target=self._work, name="engine", daemon=True)
            self._thread.start()

    async def close(self, timeout: float | None = None) -> None:
        """Stop: queued requests are refused (``QueueFull``), the running call may finish within ``timeout`` s.

        Work still queued at shutdown is dropped rather than run: its callers have been answered (503) or
        are gone, and running it would hold the process long past its shutdown timeout.
        """
        with self._cond:
            self._closing = True
            dropped = [job for jobs in self._groups.values() for job in jobs]
            self._groups.clear()
            self._cond.notify_all()
        for job in dropped:
            if not job.future.done():
                job.future.set_exception(QueueFull("the service is shutting down"))
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, timeout)
        await asyncio.sleep(0)  # let the last deliveries run

    async def submit(
        self, key: Hashable, item: Any, timeout: float | None = None, *, alone: bool = False, admitted: bool = False
    ) -> tuple[Any, BatchInfo]:
        """Queue ``item`` and wait for its result; raises ``QueueFull`` or ``DeadlineExceeded``.

        ``alone``: run it in a call of its own, without waiting for company. ``admitted``: its request was
        admitted elsewhere (a tile of a large image, bounded by the large lanes), so a full queue does not
        refuse it: half an image is no use. Cancelling the caller takes a job that has not started out of
        the queue.
        """
        job = _Job(key, item, asyncio.get_running_loop().create_future(), alone)
        with self._cond:
            if self._closing:
                raise QueueFull("the service is shutting down")
            load = self._load()
            if load >= self.max_queue and not admitted:
                raise QueueFull(f"{load} requests are queued (limit {self.max_queue})")
            self._groups.setdefault(key, []).append(job)
            self._cond.notify()
        try:
            return await asyncio.wait_for(asyncio.shield(job.future), timeout)
        except TimeoutError:
            self._drop(job)
            raise DeadlineExceeded(f"not answered within {timeout:g} s") from None
        except asyncio.CancelledError:
            self._drop(job)
            raise

    def _drop(self, job: _Job) -> None:
        """Forget ``job``: out of the queue if it has not started, its result unread if it has."""
        with self._cond:
            job.abandoned = True
            group = self._groups.get(job.key, [])
            if job in group:  # not started: leave no work behind
                group.remove(job)
                if not group:
                    del self._groups[job.key]

    def _ready(self) -> tuple[Hashable | None, float]:
        """The group to run now (or None), and how long to wait otherwise (call with ``_cond`` held)."""
        if not self._groups:
            return None, float("inf")
        now = time.perf_counter()
        key = min(self._groups, key=lambda k: self._groups[k][0].queued)  # oldest first
        jobs = self._groups[key]
        waited = now - jobs[0].queued
        if len(jobs) >= self.max_batch_size or waited >= self.max_delay_s or jobs[0].alone or self._closing:
            return key, 0.0
        full = [k for k, js in self._groups.items() if len(js) >= self.max_batch_size or js[0].alone]
        if full:
            return full[0], 0.0
        return None, self.max_delay_s - waited

    def _next(self) -> tuple[Hashable, list[_Job]] | None:
        """Block until a batch is due and take it out of the queue; None once closed and drained."""
        with self._cond:
            while True:
                key, wait = self._ready()
                if key is not None:
                    break
                if self._closing and not self._groups:
                    return None
                self._cond.wait(None if wait == float("inf") else wait)
            group = self._groups[key]
            jobs = group[:1] if group[0].alone else group[: self.max_batch_size]
            rest = self._groups[key][len(jobs) :]
            if rest:
                self._groups[key] = rest
            else:
                del self._groups[key]
            self._running = len(jobs)
            return key, jobs

    def _work(self) -> None:
        while self._run_next():
            pass

    def _run_next(self) -> bool:
        """Run the next batch; False once closed (or the loop is gone). Its jobs and results are locals of
        this call, so nothing of the last batch (a stream's history, an image) stays alive while the thread
        waits for the next one."""
        batch = self._next()
        if batch is None:
            return False
        key, jobs = batch
        started = time.perf_counter()
        try:
            results, error = self.run_batch(key, [j.item for j in jobs]), None
        except Exception as exc:  # answered to each request; the thread carries on
            results, error = None, exc
        compute = time.perf_counter() - started
        with self._cond:
            self._running = 0
        try:
            self._loop.call_soon_threadsafe(self._deliver, jobs, results, error, started, compute)
        except RuntimeError:  # the loop is gone (closed without close()): nobody is waiting
            return False
        return True

    def _deliver(self, jobs: list[_Job], results, error: Exception | None, started: float, compute: float) -> None:
        """On the event loop: answer each request of one finished batch."""
        if self.on_batch:
            self.on_batch(len(jobs), compute)
        for i, job in enumerate(jobs):
            if job.future.done() or job.abandoned:
                continue
            if error is not None:
                job.future.set_exception(error)
            else:
                job.future.set_result((results[i], BatchInfo(len(jobs), started - job.queued, compute)))
