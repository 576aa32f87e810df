"""Micro-batching: grouping by key, bounded queue, deadlines, errors (real threads, real timing)."""

import asyncio
import threading
import time

import pytest

from server.batcher import Batcher, DeadlineExceeded, QueueFull


class Recorder:
    """A batch function that doubles its inputs and records each call."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[tuple] = []
        self.delay = delay
        self.threads: set[str] = set()

    def __call__(self, key, items):
        self.calls.append((key, list(items)))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        return [2 * x for x in items]


def run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_of_one_key_share_calls_and_get_their_own_answers():
    rec = Recorder(delay=0.01)

    async def main():
        batcher = Batcher(rec, max_batch_size=4, max_delay_s=0.05)
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

    info, elapsed = run(main())
    assert info.batch_size == 1 and info.queue_s >= 0.009 and elapsed < 1.0


def test_a_full_queue_refuses_at_once_and_the_rest_succeed():
    rec = Recorder(delay=0.05)

    async def main():
        batcher = Batcher(rec, max_batch_size=2, max_delay_s=0.0, max_queue=4)
        batcher.start()
        outcomes = await asyncio.gather(*(batcher.submit("a", i) for i in range(7)), return_exceptions=True)
        await batcher.close()
        return outcomes

    outcomes = run(main())
    refused = [o for o in outcomes if isinstance(o, QueueFull)]
    served = [o for o in outcomes if not isinstance(o, Exception)]
    assert len(refused) == 3 and len(served) == 4


def test_deadline_removes_a_request_that_never_started():
    rec = Recorder(delay=0.2)

    async def main():
        batcher = Batcher(rec, max_batch_size=1, max_delay_s=0.0)
        batcher.start()
        first = asyncio.create_task(batcher.submit("a", 1))
        await asyncio.sleep(0.02)  # the first is running now
        with pytest.raises(DeadlineExceeded):
            await batcher.submit("a", 2, timeout=0.05)
        assert batcher.waiting == 0
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
