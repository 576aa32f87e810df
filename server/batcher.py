"""Dynamic micro-batching: compatible requests share one engine call.

Requests carry a key (model, shape, sample type); only requests with equal
keys are batched. One runner task takes the group whose oldest request has
waited longest, once that group is full (``max_batch_size``) or its oldest
request has waited ``max_delay_s``, and runs it in a worker thread, off the
event loop. While a batch runs, new requests gather, so batches grow with
load. The queue is bounded: past ``max_queue`` requests (waiting or running)
``submit`` raises :class:`QueueFull` at once. A request not answered within
its deadline raises :class:`DeadlineExceeded`; if it had not started, it is
taken out of the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
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


@dataclass
class _Job:
    key: Hashable
    item: Any
    future: asyncio.Future
    queued: float = field(default_factory=time.perf_counter)
    abandoned: bool = False  #: its caller gave up (deadline): nobody reads the result


RunBatch = Callable[[Hashable, Sequence[Any]], Sequence[Any]]


class Batcher:
    """Gathers ``submit``-ted items by key and runs ``run_batch(key, items) -> results`` in a thread."""

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
        self._groups: dict[Hashable, list[_Job]] = {}
        self._running = 0
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine")
        self._task: asyncio.Task | None = None
        self._closing = False

    @property
    def waiting(self) -> int:
        """Requests queued, not yet running."""
        return sum(len(jobs) for jobs in self._groups.values())

    @property
    def load(self) -> int:
        """Requests queued or running: what ``max_queue`` bounds."""
        return self.waiting + self._running

    def start(self) -> None:
        """Start the runner task (on the running event loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._runner(), name="batcher")

    async def close(self) -> None:
        """Finish what is queued and running, then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        self._executor.shutdown(wait=True)

    async def submit(self, key: Hashable, item: Any, timeout: float | None = None) -> tuple[Any, BatchInfo]:
        """Queue ``item`` and wait for its result; raises ``QueueFull`` or ``DeadlineExceeded``."""
        if self._closing:
            raise QueueFull("the service is shutting down")
        if self.load >= self.max_queue:
            raise QueueFull(f"{self.load} requests are queued (limit {self.max_queue})")
        job = _Job(key, item, asyncio.get_running_loop().create_future())
        self._groups.setdefault(key, []).append(job)
        self._wake.set()
        try:
            return await asyncio.wait_for(asyncio.shield(job.future), timeout)
        except TimeoutError:
            job.abandoned = True
            group = self._groups.get(key, [])
            if job in group:  # not started: leave no work behind
                group.remove(job)
                if not group:
                    del self._groups[key]
            raise DeadlineExceeded(f"not answered within {timeout:g} s") from None

    def _ready(self) -> tuple[Hashable | None, float]:
        """The group to run now (or None), and how long to wait otherwise."""
        if not self._groups:
            return None, float("inf")
        now = time.perf_counter()
        key = min(self._groups, key=lambda k: self._groups[k][0].queued)  # oldest first
        jobs = self._groups[key]
        waited = now - jobs[0].queued
        if len(jobs) >= self.max_batch_size or waited >= self.max_delay_s or self._closing:
            return key, 0.0
        full = [k for k, js in self._groups.items() if len(js) >= self.max_batch_size]
        if full:
            return full[0], 0.0
        return None, self.max_delay_s - waited

    async def _runner(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            key, wait = self._ready()
            if key is None:
                if self._closing and not self._groups:
                    return
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), None if wait == float("inf") else wait)
                continue
            jobs = self._groups[key][: self.max_batch_size]
            rest = self._groups[key][len(jobs) :]
            if rest:
                self._groups[key] = rest
            else:
                del self._groups[key]
            await self._run(loop, key, jobs)

    async def _run(self, loop: asyncio.AbstractEventLoop, key: Hashable, jobs: list[_Job]) -> None:
        self._running = len(jobs)
        started = time.perf_counter()
        try:
            results = await loop.run_in_executor(self._executor, self.run_batch, key, [j.item for j in jobs])
            error = None
        except Exception as exc:  # answered to each request; the runner carries on
            results, error = None, exc
        finally:
            self._running = 0
        compute = time.perf_counter() - started
        if self.on_batch:
            self.on_batch(len(jobs), compute)
        for i, job in enumerate(jobs):
            if job.future.done() or job.abandoned:
                continue
            if error is not None:
                job.future.set_exception(error)
            else:
                job.future.set_result((results[i], BatchInfo(len(jobs), started - job.queued, compute)))
