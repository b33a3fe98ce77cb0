"""Neighbour candidate pools for a corpus: retrieve in batches, merge keyphrases, write/read JSONL; one retrieval
reused at several k."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from ..corpus import Document, chunked
from ..errors import InputError
from ..progress import bar
from ..retrieval.base import Backend, KeyphraseFrequencies, Neighbour, keyphrase_frequencies
from .candidates import Candidate, CandidatePool, pool_from_neighbours


@dataclass
class PoolStats:
    """Counts of a neighbour run."""

    queries: int = 0
    without_neighbours: int = 0
    candidates: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        """One line for the terminal."""
        rate = self.queries / self.seconds if self.seconds > 0 else 0.0
        return (f"{self.queries} documents, {self.candidates} candidates "
                f"({self.candidates / max(self.queries, 1):.1f} per document), {self.without_neighbours} without "
                f"neighbours; {self.seconds:.1f}s, {rate:.0f} queries/s")


def neighbour_batches(backend: Backend, documents: Iterable[Document], *, k: int = 5, batch_size: int = 64,
                      exclude_self: bool = True) -> Iterator[tuple[Document, list[Neighbour]]]:
    """Each document with its k neighbours, asked ``batch_size`` documents at a time."""
    for docs in chunked(documents, batch_size):
        exclude = [{d.id} for d in docs] if exclude_self else None
        yield from zip(docs, backend.neighbours(docs, k, exclude))


def pool_record(doc_id: str, neighbours: Sequence[Neighbour], pool: CandidatePool) -> dict:
    """The JSON record of one pool: id, neighbours (id, rank, score) and candidates with their features."""
    return {
        "id": doc_id,
        "neighbours": [{"id": n.id, "rank": n.rank, "score": round(n.score, 6)} for n in neighbours],
        "candidates": [{"phrase": c.phrase, "neighbour_ranks": c.neighbour_ranks,
                        "bm25_scores": [round(s, 6) for s in c.bm25_scores], "count": c.count}
                       for c in pool.candidates],
    }


def write_pools(backend: Backend, documents: Iterable[Document], out: str | Path, *, k: int = 5,
                batch_size: int = 64, exclude_self: bool = True) -> PoolStats:
    """Write one JSONL pool record per document (``out`` = ``-`` for stdout; a file appears only on success)."""
    import time

    stats = PoolStats()
    start = time.perf_counter()
    from ..outputs import AtomicOutput

    try:
        with AtomicOutput(out) as fh, bar(desc="neighbours", unit="doc") as progress:
            for doc, nbs in neighbour_batches(backend, documents, k=k, batch_size=batch_size,
                                              exclude_self=exclude_self):
                pool = pool_from_neighbours(doc.id, nbs)
                stats.queries += 1
                stats.candidates += len(pool.candidates)
                stats.without_neighbours += not nbs
                fh.write(json.dumps(pool_record(doc.id, nbs, pool), ensure_ascii=False) + "\n")
                progress.update(1)
    finally:
        stats.seconds = time.perf_counter() - start
    return stats


def read_pools(path: str | Path) -> Iterator[CandidatePool]:
    """Read pools written by ``write_pools`` (``esrank neighbours``)."""
    from ..text import stemmed_key

    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                cands = [Candidate(c["phrase"], stemmed_key(c["phrase"]), list(c["neighbour_ranks"]),
                                   [float(s) for s in c["bm25_scores"]]) for c in rec["candidates"]]
                yield CandidatePool(str(rec["id"]), cands)
            except (ValueError, KeyError, TypeError) as e:
                raise InputError(f"not a pool record: {e}", source=str(path), line=lineno) from None


class RetrievedNeighbours:
    """A backend that answers neighbour queries from one retrieval at ``k_max`` per document (and exclusion set):
    a smaller k takes the top neighbours of that retrieval, so ranking at several k retrieves once."""

    def __init__(self, backend: Backend, k_max: int) -> None:
        self.backend = backend
        self.k_max = k_max
        self.name = backend.name
        self.retrieved = 0  # documents sent to the backend
        self._seen: dict[tuple[str, frozenset[str]], list[Neighbour]] = {}

    def neighbours(self, documents: Sequence[Document], k: int = 5,
                   exclude_ids: Sequence[set[str]] | None = None) -> list[list[Neighbour]]:
        """The k nearest training documents of each document, from the retrieval at ``max(k, k_max)``."""
        keys = [(d.id, frozenset(exclude_ids[i]) if exclude_ids else frozenset()) for i, d in enumerate(documents)]
        missing = [i for i, key in enumerate(keys) if key not in self._seen or
                   (k > self.k_max and len(self._seen[key]) < k)]
        if missing:
            found = self.backend.neighbours([documents[i] for i in missing], max(k, self.k_max),
                                            [set(keys[i][1]) for i in missing] if exclude_ids else None)
            for i, nbs in zip(missing, found):
                self._seen[keys[i]] = list(nbs)
            self.retrieved += len(missing)
        return [self._seen[key][:k] for key in keys]

    def keyphrase_frequencies(self) -> KeyphraseFrequencies | None:
        """The underlying index's keyphrase frequencies (None when it cannot give them)."""
        return keyphrase_frequencies(self.backend)

    def open(self) -> None:
        """Open the underlying index."""
        getattr(self.backend, "open", lambda: None)()

    def create(self, *, overwrite: bool = False) -> None:
        """Create the underlying index."""
        self.backend.create(overwrite=overwrite)

    def bulk_add(self, documents: Iterable[Document], *, batch_size: int = 500,
                 on_failure: Any = None) -> Any:
        """Add documents to the underlying index (what was retrieved before is kept: use a new instance)."""
        return self.backend.bulk_add(documents, batch_size=batch_size, on_failure=on_failure)

    def count(self) -> int:
        """Documents in the underlying index."""
        return self.backend.count()

    def ids_present(self, ids: Sequence[str]) -> set[str]:
        """Which ids the underlying index holds."""
        return self.backend.ids_present(ids)

    def iter_documents(self, batch_size: int = 1000) -> Iterator[Document]:
        """Every document of the underlying index."""
        return self.backend.iter_documents(batch_size)

    def close(self) -> None:
        """Close the underlying index."""
        self.backend.close()

    def __enter__(self) -> "RetrievedNeighbours":
        """``with RetrievedNeighbours(...) as backend:`` closes the underlying index on exit."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the underlying index."""
        self.close()
