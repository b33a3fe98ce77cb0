"""A micro-batcher: requests from concurrent callers wait in one queue; a single worker thread takes what
arrived within ``max_wait_ms`` (up to ``max_batch`` documents), ranks it in one call and hands each caller
its share. On close it stops accepting and finishes everything already queued."""
from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable, Generic, Sequence, TypeVar

T = TypeVar("T")  # an input item (a document)
R = TypeVar("R")  # its result (a prediction)

log = logging.getLogger(__name__)


class BatcherClosed(RuntimeError):
    """The batcher is shutting down and takes no new work."""


class BatcherBusy(RuntimeError):
    """The queue is full."""


@dataclass
class BatchStats:
    """Counts of the worker: batches run, items ranked, requests served, largest batch (in requests)."""

    batches: int = 0
    items: int = 0
    requests: int = 0
    largest_batch_requests: int = 0


class MicroBatcher(Generic[T, R]):
    """Batch the items of concurrent ``submit`` calls into calls of ``fn`` on one worker thread."""

    def __init__(self, fn: Callable[[list[T]], Sequence[R]], *, max_batch: int = 64, max_wait_ms: float = 5.0,
                 max_queue: int = 1024, name: str = "esrank-batcher") -> None:
        if max_batch < 1 or max_wait_ms < 0 or max_queue < 1:
            raise ValueError("max_batch and max_queue must be at least 1, max_wait_ms at least 0")
        self.fn = fn
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.stats = BatchStats()
        self._queue: queue.Queue[tuple[list[T], Future[list[R]]] | None] = queue.Queue(maxsize=max_queue)
        self._accepting = True
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def submit(self, items: Sequence[T]) -> Future[list[R]]:
        """Queue items; the future gets their results in order (or the exception of their batch)."""
        fut: Future[list[R]] = Future()
        with self._lock:
            if not self._accepting:
                raise BatcherClosed("shutting down")
            try:
                self._queue.put_nowait((list(items), fut))
            except queue.Full:
                raise BatcherBusy("too many requests waiting") from None
        return fut

    def _work(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            size = len(first[0])
            deadline = time.monotonic() + self.max_wait
            while size < self.max_batch:
                left = deadline - time.monotonic()
                try:
                    nxt = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:  # closing: run what was taken, then stop
                    stop = True
                    break
                batch.append(nxt)
                size += len(nxt[0])
            self._run(batch)

    def _run(self, batch: list[tuple[list[T], Future[list[R]]]]) -> None:
        live = [(items, fut) for items, fut in batch if fut.set_running_or_notify_cancel()]
        if not live:
            return
        flat = [item for items, _ in live for item in items]
        try:
            results = self._call(flat)
        except BaseException as e:  # noqa: BLE001
            if len(live) == 1:
                log.exception("ranking a batch of %d documents failed", len(flat))
                live[0][1].set_exception(e)
                return
            for items, fut in live:  # one caller's documents must not fail the others': each on its own
                try:
                    fut.set_result(self._call(items))
                except BaseException as e1:  # noqa: BLE001 - that caller gets the error
                    log.exception("ranking a request of %d documents failed", len(items))
                    fut.set_exception(e1)
            return
        start = 0
        for items, fut in live:
            fut.set_result(results[start:start + len(items)])
            start += len(items)
        st = self.stats
        st.batches += 1
        st.items += len(flat)
        st.requests += len(live)
        st.largest_batch_requests = max(st.largest_batch_requests, len(live))

    def _call(self, items: list[T]) -> list[R]:
        results = list(self.fn(items))
        if len(results) != len(items):
            raise RuntimeError(f"{len(items)} items but {len(results)} results")
        return results

    def close(self, timeout: float | None = None) -> None:
        """Stop accepting, finish every queued request, stop the worker."""
        with self._lock:
            if not self._accepting:
                return
            self._accepting = False
        self._queue.put(None)
        self._thread.join(timeout)

    @property
    def accepting(self) -> bool:
        """Whether new work is taken."""
        return self._accepting
