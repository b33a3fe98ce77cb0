"""Collection statistics for the indexer: descriptor document frequencies and descriptor/qualifier pair history.

Both are computed once from a corpus, saved as JSON and loaded for indexing.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..corpus import Document
from ..errors import InputError
from ..progress import track
from .automaton import Matcher


def _read_json(path: str | Path, kind: str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", source=str(path))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"not a {kind} JSON file: {e}", source=str(path)) from None
    if not isinstance(data, dict) or data.get("kind") != kind:
        raise InputError(f"not a {kind} file (expected \"kind\": \"{kind}\")", source=str(path))
    return data


@dataclass
class DocumentFrequencies:
    """How many documents of a collection mention each descriptor, with the collection's size and mean length."""

    n_docs: int = 0
    avg_len: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)

    def df(self, descriptor: str) -> int:
        """Number of documents that mention the descriptor."""
        return self.counts.get(descriptor, 0)

    @classmethod
    def from_documents(cls, documents: Iterable[Document], matcher: Matcher,
                       field_names: Sequence[str] = ("title", "text")) -> "DocumentFrequencies":
        """Run the matcher over documents and count, per descriptor, the documents mentioning it."""
        counts: Counter[str] = Counter()
        n, total_len = 0, 0
        for doc in track(documents, desc="document frequencies"):
            fts = matcher.fields(doc, field_names)
            seen: set[str] = set()
            for ft in fts:
                total_len += len(ft.tokens)
                seen.update(m.concept for m in matcher.match_field(ft) if m.kind == "D")
            counts.update(seen)
            n += 1
        return cls(n, total_len / n if n else 0.0, dict(counts))

    def save(self, path: str | Path) -> None:
        """Write as JSON."""
        Path(path).write_text(json.dumps({"kind": "document-frequencies", "n_docs": self.n_docs,
                                          "avg_len": self.avg_len, "df": self.counts}, ensure_ascii=False),
                              encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "DocumentFrequencies":
        """Read a file written by ``save``."""
        data = _read_json(path, "document-frequencies")
        df = data.get("df")
        if not isinstance(data.get("n_docs"), int) or not isinstance(df, dict):
            raise InputError("needs an integer 'n_docs' and a 'df' object", source=str(path))
        return cls(data["n_docs"], float(data.get("avg_len", 0.0)), {str(k): int(v) for k, v in df.items()})


@dataclass
class PairHistory:
    """How often each descriptor/qualifier pair was assigned in already indexed records."""

    pairs: Counter[tuple[str, str]] = field(default_factory=Counter)
    descriptors: Counter[str] = field(default_factory=Counter)

    def add(self, descriptors: Iterable[str], pairs: Iterable[tuple[str, str]]) -> None:
        """Record one indexed document."""
        pairs = set(pairs)
        self.pairs.update(pairs)
        self.descriptors.update(set(descriptors) | {d for d, _ in pairs})

    def probability(self, descriptor: str, qualifier: str) -> float:
        """P(qualifier | descriptor) over the history, smoothed: count(D,Q) / (count(D) + 1)."""
        return self.pairs.get((descriptor, qualifier), 0) / (self.descriptors.get(descriptor, 0) + 1.0)

    @classmethod
    def from_gold(cls, path: str | Path) -> "PairHistory":
        """Learn the history from indexed records in the gold JSONL format (see ``evaluate.read_gold``)."""
        from .evaluate import read_gold

        h = cls()
        for rec in read_gold(path):
            h.add(rec.descriptors, rec.pairs)
        return h

    def save(self, path: str | Path) -> None:
        """Write as JSON."""
        Path(path).write_text(json.dumps({
            "kind": "pair-history", "descriptors": dict(self.descriptors),
            "pairs": [[d, q, n] for (d, q), n in sorted(self.pairs.items())]}, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "PairHistory":
        """Read a file written by ``save``."""
        data = _read_json(path, "pair-history")
        try:
            return cls(Counter({(str(d), str(q)): int(n) for d, q, n in data["pairs"]}),
                       Counter({str(k): int(v) for k, v in data["descriptors"].items()}))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise InputError("needs 'pairs' ([descriptor, qualifier, count] lists) and 'descriptors'",
                             source=str(path)) from None
