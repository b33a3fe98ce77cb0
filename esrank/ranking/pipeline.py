"""The ranking pipeline: documents → neighbours → candidate pools → ranked keyphrases, in batches."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence

from ..stages import StageTracker, stage
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



@dataclass
class RankSettings:
    """How documents are ranked: neighbours k, output size (None: every candidate), batch size, self-exclusion,
    candidate sources, method and the mix weight (``method="mix"``; None: ``mix.DEFAULT_WEIGHT``)."""

    k: int = DEFAULT_K
    top_n: int | None = None
    batch_size: int = 64
    exclude_self: bool = True
    sources: tuple[str, ...] = ("neighbours",)
    method: str = DEFAULT_METHOD
    mix_weight: float | None = None
    mix_model: "MixModel | None" = None  # the fitted neighbour-aware model (method mix; wins over the weight)
    frequencies: bool = False  # give candidates the index's keyphrase frequencies (the mix model needs them)

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

    The time split accumulates in ``ranker.stats``, or in ``stats`` for the vote baseline.
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
    with bar(total=total, desc=desc, unit="doc") as progress:
        for batch in chunked(documents, settings.batch_size):
            t0 = time.perf_counter()
            pools = candidate_pools(backend, batch, settings, extra=extra, tracker=tracker)
            stats.retrieval_s += time.perf_counter() - t0
            if vote or ranker is None:
                preds = vote_rank_pools(batch, pools, settings.top_n, stats=stats, tracker=tracker)
            else:
                preds = ranker.rank_pools(batch, pools, settings.top_n, tracker=tracker, mix_weight=weight,
                                          mix_model=settings.mix_model if settings.method == "mix" else None)
            yield from preds
            progress.update(len(batch))


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
