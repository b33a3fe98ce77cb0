"""The ranking pipeline: documents → neighbours → candidate pools → ranked keyphrases, in batches.

The pipeline never waits on itself: while a batch is encoded and scored, one background thread reads the next
batch of documents and builds its candidate pools (retrieval, pools, keyphrase frequencies; see ``_Prefetch``).
"""
from __future__ import annotations

import contextlib
import queue
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Generator, Iterable, Iterator, Sequence

from ..stages import StageTracker, exclusive_stages, stage
from ..corpus import Document, chunked
from ..errors import ConfigError
from ..predictions import Prediction
from ..progress import bar
from ..retrieval.base import Backend
from ..retrieval.base import keyphrase_frequencies
from ..text import stemmed_key
from .candidates import CandidatePool, add_candidates, pool_from_neighbours, set_frequencies
from .ranker import Ranker, RankStats, vote_rank_pools

CANDIDATE_SOURCES = ("neighbours", "vocabulary")
METHODS = ("vote", "model", "mix")  # neighbour vote; bi-encoder cosine; cosine mixed with the normalised vote
DEFAULT_K = 50  # neighbours per document: chosen by measurement on acm-dev (docs/ranking.md, "Defaults")
DEFAULT_METHOD = "mix"  # beat the pure cosine on present F1@Q and absent R@Q on acm-dev (same section)
CandidateSource = Callable[[Document], Sequence[str]]

if TYPE_CHECKING:
    from .mix import MixModel



# Documents retrieved and ranked together. The batch is also the window their encoding is sorted by length in
# (``Encoder.encode_documents``): a wider window pads less (acm-dev: 6% extra tokens at 256, 18% at 64).
DEFAULT_BATCH = 256


@dataclass
class RankSettings:
    """How documents are ranked: neighbours k, output size (None: every candidate), batch size, self-exclusion,
    candidate sources, method and the mix weight (``method="mix"``; None: ``mix.DEFAULT_WEIGHT``)."""

    k: int = DEFAULT_K
    top_n: int | None = None
    batch_size: int = DEFAULT_BATCH
    exclude_self: bool = True
    sources: tuple[str, ...] = ("neighbours",)
    method: str = DEFAULT_METHOD
    mix_weight: float | None = None
    mix_model: "MixModel | None" = None  # the fitted neighbour-aware model (method mix; wins over the weight)
    frequencies: bool = False  # give candidates the index's keyphrase frequencies (the mix model needs them)
    # read and retrieve the next batch in a background thread while this one is ranked (results are the same);
    # off, or with a tracker that meters energy per stage (``esrank.stages.exclusive_stages``): one at a time
    overlap: bool = True

    def validate(self) -> None:
        """Raise ConfigError on an impossible setting."""
        if self.k < 1:
            raise ConfigError("-k must be at least 1")
        if self.batch_size < 1:
            raise ConfigError("--batch-size must be at least 1")
        if self.top_n is not None and self.top_n < 1:
            raise ConfigError("--top-n must be at least 1")
        if self.method not in METHODS:
            raise ConfigError(f"--method takes one of {', '.join(METHODS)}, not {self.method}")
        if self.mix_weight is not None and not 0 <= self.mix_weight <= 1:
            raise ConfigError(f"the mix weight must be in [0, 1], not {self.mix_weight}")
        unknown = [s for s in self.sources if s not in CANDIDATE_SOURCES]
        if unknown or not self.sources:
            raise ConfigError(f"--candidates takes a comma list of {', '.join(CANDIDATE_SOURCES)}, "
                              f"not {','.join(self.sources) or 'nothing'}")


def candidate_pools(backend: Backend | None, documents: Sequence[Document], settings: RankSettings, *,
                    extra: CandidateSource | None = None, tracker: StageTracker | None = None) -> list[CandidatePool]:
    """Candidate pools of a batch: the neighbours' keyphrases, plus phrases of an extra source."""
    if "neighbours" in settings.sources:
        if backend is None:
            raise ConfigError("neighbour candidates need an index (--index)")
        exclude = [{d.id} for d in documents] if settings.exclude_self else None
        with stage(tracker, "neighbour_retrieval", len(documents)):
            neighbours = backend.neighbours(documents, settings.k, exclude)
        pools = [pool_from_neighbours(d.id, nb) for d, nb in zip(documents, neighbours)]
        if settings.frequencies or (settings.mix_model is not None and settings.method == "mix"):
            _add_frequencies(backend, documents, pools, settings.exclude_self)
    else:
        pools = [CandidatePool(d.id) for d in documents]
    if extra is not None and "vocabulary" in settings.sources:
        for doc, pool in zip(documents, pools):
            add_candidates(pool, extra(doc), "vocabulary")
    return pools


def _add_frequencies(backend: Backend, documents: Sequence[Document], pools: Sequence[CandidatePool],
                     exclude_self: bool) -> None:
    """Give the candidates the index's keyphrase frequencies; a query document that is itself indexed (and
    excluded from its neighbours) does not count its own keyphrases."""
    frequencies = keyphrase_frequencies(backend)
    if frequencies is None:
        return
    with_keys = [d for d in documents if d.keyphrases] if exclude_self else []
    indexed = backend.ids_present([d.id for d in with_keys]) if with_keys else set()
    for doc, pool in zip(documents, pools):
        own = {k for k in map(stemmed_key, doc.keyphrases) if k} if doc.id in indexed else set()
        set_frequencies(pool, frequencies, own)


def rank_documents(documents: Iterable[Document], backend: Backend | None, ranker: Ranker | None,
                   settings: RankSettings | None = None, *, extra: CandidateSource | None = None,
                   tracker: StageTracker | None = None, total: int | None = None, desc: str = "ranking",
                   stats: RankStats | None = None) -> Iterator[Prediction]:
    """Rank each document's candidates by ``settings.method`` (``ranker`` None: the neighbour-vote baseline);
    yields in input order.

    The time split accumulates in ``ranker.stats``, or in ``stats`` for the vote baseline. With
    ``settings.overlap`` the next batch is read and retrieved in a background thread while this one is ranked:
    the same predictions in the same order; an error of a later batch (a bad input record, a failed search) is
    raised when that batch is reached, after the predictions of the batches before it; the thread ends with the
    generator (exhausted, closed, or left by an exception). Its ``retrieval_s`` is then the time ranking waited
    for retrieval, and ``retrieval_overlapped_s`` the retrieval time hidden behind encoding and scoring.
    """
    settings = settings or RankSettings()
    settings.validate()
    vote = ranker is None or settings.method == "vote"
    weight = None
    if settings.method == "mix":
        from .mix import DEFAULT_WEIGHT

        weight = settings.mix_weight if settings.mix_weight is not None else DEFAULT_WEIGHT
    if not vote:
        stats = ranker.stats  # type: ignore[union-attr]
    elif stats is None:
        stats = RankStats()
    if settings.overlap and not exclusive_stages(tracker):
        batches = _overlapped(documents, backend, settings, extra, tracker, stats)
    else:
        batches = _sequential(documents, backend, settings, extra, tracker, stats)
    with bar(total=total, desc=desc, unit="doc") as progress, contextlib.closing(batches):
        for batch, pools in batches:
            if vote or ranker is None:
                preds = vote_rank_pools(batch, pools, settings.top_n, stats=stats, tracker=tracker)
            else:
                preds = ranker.rank_pools(batch, pools, settings.top_n, tracker=tracker, mix_weight=weight,
                                          mix_model=settings.mix_model if settings.method == "mix" else None)
            yield from preds
            progress.update(len(batch))


Batches = Generator[tuple[list[Document], list[CandidatePool]], None, None]


def _sequential(documents: Iterable[Document], backend: Backend | None, settings: RankSettings,
                extra: CandidateSource | None, tracker: StageTracker | None, stats: RankStats) -> Batches:
    """Each batch with its candidate pools, built when the batch is reached."""
    for batch in chunked(documents, settings.batch_size):
        t0 = time.perf_counter()
        pools = candidate_pools(backend, batch, settings, extra=extra, tracker=tracker)
        stats.retrieval_s += time.perf_counter() - t0
        yield batch, pools


def _overlapped(documents: Iterable[Document], backend: Backend | None, settings: RankSettings,
                extra: CandidateSource | None, tracker: StageTracker | None, stats: RankStats) -> Batches:
    """Each batch with its candidate pools, the next one read and built in the background meanwhile.

    Cost accounting: the background thread runs no stage of ``tracker`` (its stages are exclusive, one at a
    time); the wait for a batch is the ``neighbour_retrieval`` stage, so the records add up to the elapsed time
    and the retrieval done while a batch was encoded is inside that batch's encoding records.
    """
    def build(batch: list[Document]) -> list[CandidatePool]:
        return candidate_pools(backend, batch, settings, extra=extra)

    prefetch = _Prefetch(chunked(documents, settings.batch_size), build)
    try:
        prefetch.request()
        while True:
            t0 = time.perf_counter()
            with stage(tracker, "neighbour_retrieval") as run:
                item = prefetch.take()
                if item is not None and hasattr(run, "add"):
                    run.add(len(item[0]))
            if item is None:
                return
            prefetch.request()  # the next batch is read and retrieved while this one is ranked
            batch, pools, work_s = item
            waited = time.perf_counter() - t0
            stats.retrieval_s += waited
            stats.retrieval_overlapped_s += max(0.0, work_s - waited)
            yield batch, pools
    finally:
        prefetch.close()


class _Failed:
    """An exception of the background thread, handed to the caller with the batch it belongs to."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()


class _Prefetch:
    """One background thread that, on each ``request``, reads the next batch and builds its pools (so it is never
    more than one batch ahead); ``take`` returns them in order, None at the end, or raises the thread's error.

    Only this thread reads the input and uses the backend while the pipeline runs, and it is the only thread of
    the pipeline that does: the backend needs no locking (the embedded index builds its lazy state on first use
    from this thread alone; Elasticsearch/OpenSearch clients are thread-safe anyway). ``close`` stops it: it
    waits for a retrieval in progress to end (so the caller may close the backend afterwards) but not for an input
    read blocked on a pipe (a daemon thread: it cannot keep the process alive).
    """

    def __init__(self, batches: Iterator[list[Document]], build: Callable[[list[Document]], list[CandidatePool]]):
        self._batches = batches
        self._build = build
        self._wanted = threading.Semaphore(0)
        self._ready: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._building = False
        self._thread = threading.Thread(target=self._work, name="esrank-retrieval", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        try:
            while True:
                self._wanted.acquire()
                if self._stop.is_set():
                    return
                batch = next(self._batches, None)
                if batch is None:
                    self._ready.put(_END)
                    return
                if self._stop.is_set():
                    return
                self._building = True
                t0 = time.perf_counter()
                pools = self._build(batch)
                self._ready.put((batch, pools, time.perf_counter() - t0))
                self._building = False
        except BaseException as e:  # noqa: BLE001 - every error goes to the caller, in its batch's place
            self._building = False
            self._ready.put(_Failed(e))

    def request(self) -> None:
        """Let the thread read and build one more batch."""
        self._wanted.release()

    def take(self) -> tuple[list[Document], list[CandidatePool], float] | None:
        """The next (batch, pools, seconds building them); None after the last; the thread's error re-raised."""
        item = self._ready.get()
        if item is _END:
            return None
        if isinstance(item, _Failed):
            raise item.error
        return item

    def close(self) -> None:
        """Stop the thread: wait for a batch being built, not for a blocked input read."""
        self._stop.set()
        self._wanted.release()
        self._thread.join(None if self._building else 0.5)
        if self._building:  # the build started just after the check above
            self._thread.join()


def hard_negative_pools(documents: Sequence[Document], backend: Backend, k: int = 5,
                        batch_size: int = 64) -> dict[str, list[str]]:
    """For training: each document's neighbour candidates (itself excluded), to draw hard negatives from."""
    settings = RankSettings(k=k, batch_size=batch_size, exclude_self=True)
    out: dict[str, list[str]] = {}
    with bar(total=len(documents), desc="hard negatives", unit="doc") as progress:
        for batch in chunked(documents, batch_size):
            for doc, pool in zip(batch, candidate_pools(backend, batch, settings)):
                out[doc.id] = pool.phrases
            progress.update(len(batch))
    return out
