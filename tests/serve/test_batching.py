"""MicroBatcher: concurrent submissions ranked together, results routed back, failures isolated, drained on close."""
from __future__ import annotations

import threading
import time

import pytest

from esrank.serve.batching import BatcherClosed, MicroBatcher


def test_concurrent_submissions_are_batched_and_routed_back():
    calls: list[list[int]] = []

    def double(items: list[int]) -> list[int]:
        calls.append(list(items))
        return [2 * i for i in items]

    b: MicroBatcher[int, int] = MicroBatcher(double, max_batch=100, max_wait_ms=200)
    futures = {}
    barrier = threading.Barrier(8)

    def submit(i: int) -> None:
        barrier.wait()
        futures[i] = b.submit([i, i + 100])

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {i: f.result(10) for i, f in futures.items()} == {i: [2 * i, 2 * i + 200] for i in range(8)}
    assert len(calls) < 8 and b.stats.requests == 8 and b.stats.items == 16
    b.close()


def test_max_batch_bounds_a_batch():
    sizes: list[int] = []
    gate = threading.Event()

    def fn(items: list[int]) -> list[int]:
        gate.wait(5)
        sizes.append(len(items))
        return items

    b: MicroBatcher[int, int] = MicroBatcher(fn, max_batch=3, max_wait_ms=50)
    futures = [b.submit([i]) for i in range(7)]
    gate.set()
    assert [f.result(10) for f in futures] == [[i] for i in range(7)]
    assert max(sizes) <= 3 and sum(sizes) == 7
    b.close()


def test_a_failing_request_does_not_fail_the_others_of_its_batch():
    def fn(items: list[int]) -> list[int]:
        if -1 in items:
            raise ValueError("bad item")
        time.sleep(0.01)
        return items

    b: MicroBatcher[int, int] = MicroBatcher(fn, max_batch=100, max_wait_ms=300)
    good, bad, good2 = b.submit([1]), b.submit([-1]), b.submit([2, 3])
    assert good.result(10) == [1] and good2.result(10) == [2, 3]
    with pytest.raises(ValueError, match="bad item"):
        bad.result(10)
    b.close()


def test_close_drains_the_queue_and_refuses_new_work():
    def slow(items: list[int]) -> list[int]:
        time.sleep(0.05)
        return items

    b: MicroBatcher[int, int] = MicroBatcher(slow, max_batch=1, max_wait_ms=0)
    futures = [b.submit([i]) for i in range(5)]
    b.close()
    assert all(f.done() for f in futures) and [f.result() for f in futures] == [[i] for i in range(5)]
    with pytest.raises(BatcherClosed):
        b.submit([9])
    assert not b.accepting
