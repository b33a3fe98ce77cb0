"""Neighbour candidate pools for a corpus: retrieve in batches, merge keyphrases, write/read JSONL."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from ..corpus import Document, chunked
from ..errors import InputError
from ..progress import bar
from ..retrieval.base import Backend, Neighbour
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


def pool_record(doc_id: str, neighbours: Sequence[Neighbour], pool: CandidatePool) -> dict:  # type: ignore[type-arg]
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
