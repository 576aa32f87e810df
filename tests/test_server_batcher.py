"""Micro-batching: grouping by key, bounded queue, deadlines, errors (real threads).

Where a test needs a batch to be running or requests to be waiting, the batch function is held on an event
(``Recorder(gate=...)``) rather than slowed by a sleep, so no outcome depends on how fast the machine is.
"""

import asyncio
import threading
import time

import pytest

from server.batcher import Batcher, DeadlineExceeded, QueueFull

HANG_GUARD_S = 60.0  #: a wait that lasts this long has hung: never a pace


class Recorder:
    """A batch function that doubles its inputs and records each call; with a ``gate``, each call first
    waits for it to open (``entered`` tells that a call is inside)."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.calls: list[tuple] = []
        self.threads: set[str] = set()
        self.gate = gate
        self.entered = threading.Event()

    def __call__(self, key, items):
        self.calls.append((key, list(items)))
        self.threads.add(threading.current_thread().name)
        self.entered.set()
        if self.gate is not None and not self.gate.wait(HANG_GUARD_S):
            raise TimeoutError("the test never opened the gate")
        return [2 * x for x in items]


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, HANG_GUARD_S))


async def until(condition, what: str) -> None:
    """Yield to the event loop until ``condition()`` holds (a hang guard, not a pace)."""
    deadline = time.monotonic() + HANG_GUARD_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.001)


def test_concurrent_requests_of_one_key_share_calls_and_get_their_own_answers():
    rec = Recorder()

    async def main():
        # A delay no test run reaches: batches leave only when full, so their sizes cannot depend on timing.
        batcher = Batcher(rec, max_batch_size=4, max_delay_s=HANG_GUARD_S)
        batcher.start()
        results = await asyncio.gather(*(batcher.submit("a", i) for i in range(8)))
        await batcher.close()
        return results

    results = run(main())
    assert [r for r, _ in results] == [2 * i for i in range(8)]
    assert [len(items) for _, items in rec.calls] == [4, 4]
    assert {info.batch_size for _, info in results} == {4}
    assert rec.threads and "MainThread" not in rec.threads  # off the event loop


def test_keys_are_never_mixed():
    rec = Recorder()

    async def main():
        batcher = Batcher(rec, max_batch_size=8, max_delay_s=0.02)
        batcher.start()
        await asyncio.gather(*(batcher.submit("a" if i % 2 else "b", i) for i in range(6)))
        await batcher.close()

    run(main())
    for key, items in rec.calls:
        assert all((x % 2 == 1) == (key == "a") for x in items)


def test_a_lone_request_waits_at_most_the_delay():
    rec = Recorder()

    async def main():
        batcher = Batcher(rec, max_batch_size=16, max_delay_s=0.01)
        batcher.start()
        start = time.perf_counter()
        (_, info) = await batcher.submit("a", 1)
        elapsed = time.perf_counter() - start
        await batcher.close()
        return info, elapsed

    info, elapsed = run(main())  # returning at all is the point: the batch never fills, the delay releases it
    assert info.batch_size == 1 and info.queue_s >= 0.01 and elapsed >= 0.01


def test_a_full_queue_refuses_at_once_and_the_rest_succeed():
    gate = threading.Event()
    rec = Recorder(gate)

    async def main():
        batcher = Batcher(rec, max_batch_size=2, max_delay_s=0.0, max_queue=4)
        batcher.start()
        tasks = [asyncio.create_task(batcher.submit("a", 0))]
        await until(rec.entered.is_set, "the first batch to start")  # running, and held there by the gate
        tasks += [asyncio.create_task(batcher.submit("a", i)) for i in range(1, 7)]
        await until(lambda: batcher.waiting + sum(t.done() for t in tasks) == 6, "each to queue or be refused")
        # One running and three waiting make four, the limit: exactly the last three are refused.
        refused = [i for i, t in enumerate(tasks) if t.done()]
        assert refused == [4, 5, 6] and all(isinstance(tasks[i].exception(), QueueFull) for i in refused)
        assert batcher.waiting == 3 and batcher.load == 4
        gate.set()
        served = [await t for t in tasks[:4]]
        await batcher.close()
        return served

    assert [result for result, _ in run(main())] == [0, 2, 4, 6]
    assert [items for _, items in rec.calls] == [[0], [1, 2], [3]]


def test_deadline_removes_a_request_that_never_started():
    gate = threading.Event()
    rec = Recorder(gate)

    async def main():
        batcher = Batcher(rec, max_batch_size=1, max_delay_s=0.0)
        batcher.start()
        first = asyncio.create_task(batcher.submit("a", 1))
        await until(rec.entered.is_set, "the first batch to start")  # and it stays running: the gate is shut
        with pytest.raises(DeadlineExceeded):
            await batcher.submit("a", 2, timeout=0.05)
        assert batcher.waiting == 0
        gate.set()
        await first
        await batcher.close()

    run(main())
    assert [items for _, items in rec.calls] == [[1]]  # the abandoned request never ran


def test_an_engine_error_reaches_each_caller_and_the_runner_survives():
    def flaky(key, items):
        if key == "bad":
            raise ValueError("engine exploded")
        return items

    async def main():
        batcher = Batcher(flaky, max_batch_size=4, max_delay_s=0.0)
        batcher.start()
        with pytest.raises(ValueError, match="exploded"):
            await batcher.submit("bad", 1)
        result, _ = await batcher.submit("good", 5)
        await batcher.close()
        return result

    assert run(main()) == 5


def test_a_deadline_is_a_deadline_while_frames_of_the_same_shape_wait():
    import numpy as np

    gate = threading.Event()
    rec = Recorder(gate)

    def frames_back(key, items):
        rec(key, [0] * len(items))  # held by the gate
        return items

    async def main():
        batcher = Batcher(frames_back, max_batch_size=1)
        batcher.start()
        first = asyncio.create_task(batcher.submit("k", np.zeros((2, 2))))
        await until(rec.entered.is_set, "the first batch to start")
        waiting = asyncio.create_task(batcher.submit("k", np.zeros((2, 2))))
        await until(lambda: batcher.waiting == 1, "a frame to wait")
        try:
            with pytest.raises(DeadlineExceeded):
                await batcher.submit("k", np.ones((2, 2)), timeout=0.05)
        finally:
            gate.set()
            await first
            await waiting
            await batcher.close()

    run(main())


def test_cancelling_a_caller_takes_its_job_out_of_the_queue():
    gate = threading.Event()
    rec = Recorder(gate)

    async def main():
        batcher = Batcher(rec, max_batch_size=1, max_delay_s=0.0)
        batcher.start()
        first = asyncio.create_task(batcher.submit("a", 1))
        await until(rec.entered.is_set, "the first batch to start")
        gone = asyncio.create_task(batcher.submit("a", 2))
        await until(lambda: batcher.waiting == 1, "the second request to queue")
        gone.cancel()  # its client went away: nobody will read its result
        await until(lambda: batcher.waiting == 0, "the cancelled request to leave the queue")
        gate.set()
        await first
        await batcher.close()

    run(main())
    assert [items for _, items in rec.calls] == [[1]]


def test_close_drops_queued_work_instead_of_running_it():
    gate = threading.Event()
    rec = Recorder(gate)

    async def main():
        batcher = Batcher(rec, max_batch_size=1, max_delay_s=0.0)
        batcher.start()
        running = asyncio.create_task(batcher.submit("a", 1))
        await until(rec.entered.is_set, "the first batch to start")
        queued = [asyncio.create_task(batcher.submit("a", i)) for i in (2, 3)]
        await until(lambda: batcher.waiting == 2, "two requests to queue")
        closing = asyncio.create_task(batcher.close(timeout=HANG_GUARD_S))
        for task in queued:
            with pytest.raises(QueueFull, match="shutting down"):
                await task
        gate.set()
        await closing
        assert (await running)[0] == 2

    run(main())
    assert [items for _, items in rec.calls] == [[1]]


def test_jobs_submitted_alone_take_turns_with_others_oldest_first():
    gate = threading.Event()
    rec = Recorder(gate)

    async def main():
        # A delay no run reaches and a batch size never filled: only ``alone`` lets a job start at once.
        batcher = Batcher(rec, max_batch_size=8, max_delay_s=HANG_GUARD_S)
        batcher.start()
        tile = asyncio.create_task(batcher.submit("tile", 10, alone=True))
        await until(rec.entered.is_set, "the first tile to start")
        small = asyncio.create_task(batcher.submit("small", 1, alone=True))
        await until(lambda: batcher.waiting == 1, "the small request to queue")
        gate.set()
        await tile
        second_tile = asyncio.create_task(batcher.submit("tile", 11, alone=True))
        await asyncio.gather(small, second_tile)
        await batcher.close()

    run(main())
    assert [key for key, _ in rec.calls] == ["tile", "small", "tile"]


def test_admitted_jobs_are_not_refused_by_a_full_queue():
    gate = threading.Event()
    rec = Recorder(gate)

    async def main():
        batcher = Batcher(rec, max_batch_size=1, max_delay_s=0.0, max_queue=1)
        batcher.start()
        first = asyncio.create_task(batcher.submit("a", 1))
        await until(rec.entered.is_set, "the first batch to start")
        with pytest.raises(QueueFull):
            await batcher.submit("a", 2)
        tile = asyncio.create_task(batcher.submit("tile", 3, alone=True, admitted=True))  # a large image's next tile
        await until(lambda: batcher.waiting == 1, "the tile to queue")
        gate.set()
        results = [(await first)[0], (await tile)[0]]
        await batcher.close()
        return results

    assert run(main()) == [2, 6]
