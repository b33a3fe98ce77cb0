"""The ``Backend`` protocol every BM25 index implements, and the ``Neighbour`` it returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Protocol, Sequence, runtime_checkable

from ..corpus import Document


@dataclass(frozen=True)
class Neighbour:
    """One retrieved training document: its id, rank (1 = best), BM25 score and keyphrases."""

    id: str
    rank: int
    score: float
    keyphrases: tuple[str, ...] = field(default_factory=tuple)


@dataclass
class BulkResult:
    """Outcome of a bulk load: every read document is either indexed or failed (with a reason)."""

    indexed: int = 0
    skipped_existing: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (document id, reason)
    created: int = 0  # of ``indexed``, how many ids were new to the index (the rest replaced a document)
    retried: int = 0  # bulk items or requests sent again after 429/503/connection errors
    maybe_created: int = 0  # answered "updated" after a resent request: perhaps created by the lost attempt


@dataclass(frozen=True)
class KeyphraseFrequencies:
    """How many indexed documents carry each keyphrase (by stemmed key, ``esrank.text.stemmed_key``), and how
    many documents the index holds: the keyphrase prior the neighbour-aware ranker uses."""

    documents: int
    counts: dict[str, int] = field(default_factory=dict)

    def get(self, key: str) -> int:
        """Documents carrying the keyphrase of this stemmed key (0 when none)."""
        return self.counts.get(key, 0)


def count_keyphrases(keyphrase_lists: Iterable[Sequence[str]]) -> KeyphraseFrequencies:
    """Keyphrase frequencies of documents given by their keyphrase lists (a document counts a key once)."""
    from ..text import stemmed_key

    counts: dict[str, int] = {}
    n = 0
    for phrases in keyphrase_lists:
        n += 1
        for key in {stemmed_key(p) for p in phrases}:
            if key:
                counts[key] = counts.get(key, 0) + 1
    return KeyphraseFrequencies(n, counts)


def keyphrase_frequencies(backend: object) -> KeyphraseFrequencies | None:
    """The backend's keyphrase frequencies, or None when it cannot give them (a backend without the method)."""
    fn = getattr(backend, "keyphrase_frequencies", None)
    return fn() if callable(fn) else None


@runtime_checkable
class Backend(Protocol):
    """A BM25 index of training documents with their keyphrases."""

    name: str

    def open(self) -> None:
        """Open an existing index (raise BackendError when it does not exist)."""

    def create(self, *, overwrite: bool = False) -> None:
        """Create the index (settings and mappings from ``mappings/``); open it when it exists."""

    def bulk_add(self, documents: Iterable[Document], *, batch_size: int = 500,
                 on_failure: Callable[[Document, str], None] | None = None) -> BulkResult:
        """Add documents (stable ids: reloading never duplicates); ``on_failure(doc, reason)`` sees each failure."""

    def count(self) -> int:
        """Number of documents in the index."""

    def ids_present(self, ids: Sequence[str]) -> set[str]:
        """Which of these document ids the index already holds (for ``--resume``)."""

    def neighbours(self, documents: Sequence[Document], k: int = 5,
                   exclude_ids: Sequence[set[str]] | None = None) -> list[list[Neighbour]]:
        """The k nearest training documents of each query document (BM25 over title + text)."""

    def iter_documents(self, batch_size: int = 1000) -> Iterator[Document]:
        """Every stored document (id, title, text, keyphrases), in no particular order."""

    def keyphrase_frequencies(self) -> KeyphraseFrequencies:
        """How many documents carry each keyphrase (computed once per opened index and kept)."""

    def close(self) -> None:
        """Release connections / flush files."""

    def __enter__(self) -> "Backend":
        """A backend is a context manager: ``with open_backend(...) as backend:`` closes it on exit."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the backend."""
        self.close()
