"""Candidate keyphrases of a query document: the unique keyphrases of its retrieved neighbours."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, AbstractSet, Iterable, Sequence

from ..text import stemmed_key

if TYPE_CHECKING:
    from ..retrieval.base import KeyphraseFrequencies, Neighbour


@dataclass(slots=True)
class Candidate:
    """A candidate keyphrase with the retrieval features it came with."""

    phrase: str
    key: str  # stemmed form; candidates are unique by key within a pool
    neighbour_ranks: list[int] = field(default_factory=list)
    bm25_scores: list[float] = field(default_factory=list)
    sources: tuple[str, ...] = ("neighbours",)
    index_df: int = 0  # indexed documents carrying this keyphrase (the query document itself not counted)
    # cosine of the document with the keyphrase's profile, and the mean cosine with the documents carrying it
    # (esrank.ranking.profiles; 0 until profiles are applied)
    profile_cosine: float = 0.0
    profile_mean: float = 0.0

    @property
    def count(self) -> int:
        """How many neighbours carry this keyphrase."""
        return len(self.neighbour_ranks)

    @property
    def vote(self) -> float:
        """Neighbour-vote score: summed BM25 score of the neighbours carrying the keyphrase."""
        return float(sum(self.bm25_scores))


@dataclass
class CandidatePool:
    """All candidates of one query document."""

    doc_id: str
    candidates: list[Candidate] = field(default_factory=list)
    index_documents: int = 0  # documents in the index the frequencies come from (0: frequencies unknown)
    own_keys: frozenset[str] = frozenset()  # the document's own keyphrase keys when it is itself indexed
    profiled: bool = False  # whether keyphrase profiles were applied (esrank.ranking.profiles)

    @property
    def phrases(self) -> list[str]:
        """The candidate phrases, in pool order."""
        return [c.phrase for c in self.candidates]


def pool_from_neighbours(doc_id: str, neighbours: Sequence["Neighbour"]) -> CandidatePool:
    """Merge the keyphrases of a document's neighbours into one pool, unique by stemmed form."""
    by_key: dict[str, Candidate] = {}
    for nb in neighbours:
        rank, score = nb.rank, nb.score
        for phrase in nb.keyphrases:
            key = stemmed_key(phrase)
            if not key:
                continue
            cand = by_key.get(key)
            if cand is None:
                by_key[key] = Candidate(phrase, key, [rank], [score])
            elif rank not in cand.neighbour_ranks:  # one neighbour counts once, however many spellings it has
                cand.neighbour_ranks.append(rank)
                cand.bm25_scores.append(score)
    return CandidatePool(doc_id, list(by_key.values()))


def set_frequencies(pool: CandidatePool, frequencies: "KeyphraseFrequencies",
                    own_keys: AbstractSet[str] = frozenset()) -> None:
    """Give each candidate its index frequency; ``own_keys``: the query document's own keyphrase keys when the
    document is itself indexed (its own keyphrases are not evidence for it: they are not counted)."""
    pool.index_documents = max(frequencies.documents, 1)
    pool.own_keys = frozenset(own_keys)
    for c in pool.candidates:
        c.index_df = max(frequencies.get(c.key) - (1 if c.key in own_keys else 0), 0)


def add_candidates(pool: CandidatePool, phrases: Iterable[str], source: str) -> None:
    """Add phrases from another source (e.g. a thesaurus) to a pool, merging by stemmed form."""
    have = {c.key: c for c in pool.candidates}
    for p in phrases:
        key = stemmed_key(p)
        if not key:
            continue
        if key in have:
            c = have[key]
            if source not in c.sources:
                c.sources = c.sources + (source,)
        else:
            c = Candidate(p, key, sources=(source,))
            have[key] = c
            pool.candidates.append(c)
