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
from .thesaurus import Thesaurus


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
    """How many documents of a collection mention each descriptor and each descriptor/qualifier pair, with the
    collection's size and mean length (``pairs`` is None for a file written before pairs were counted)."""

    n_docs: int = 0
    avg_len: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    pairs: dict[tuple[str, str], int] | None = field(default_factory=dict)

    def df(self, descriptor: str) -> int:
        """Number of documents that mention the descriptor."""
        return self.counts.get(descriptor, 0)

    def pair_df(self, descriptor: str, qualifier: str) -> int:
        """Number of documents in which the pair is formed (without pair counts: the descriptor's, an upper bound)."""
        if self.pairs is None:
            return self.df(descriptor)
        return self.pairs.get((descriptor, qualifier), 0)

    @classmethod
    def from_documents(cls, documents: Iterable[Document], matcher: Matcher,
                       field_names: Sequence[str] = ("title", "text")) -> "DocumentFrequencies":
        """Run the matcher over documents and count, per descriptor and per pair, the documents mentioning it.

        Pairs are formed as the indexer forms them (same sentence, isolated qualifier, rules; allowed by the
        thesaurus), without a pair history.
        """
        from .scoring import form_pairs, share_hierarchy, weighted_counts

        counts: Counter[str] = Counter()
        pair_counts: Counter[tuple[str, str]] = Counter()
        ones = {name: 1.0 for name in field_names}
        n, total_len = 0, 0
        for doc in track(documents, desc="document frequencies"):
            fts = matcher.fields(doc, field_names)
            matches, rules = [], []
            for ft in fts:
                total_len += len(ft.tokens)
                got = matcher.match_field(ft)
                matches += got
                rules += matcher.rule_pairs(ft, got)
            counts.update({m.concept for m in matches if m.kind == "D"})
            shared = share_hierarchy(weighted_counts(matches, ones), matcher.thesaurus)
            pair_counts.update(form_pairs(matches, shared.counts, matcher.thesaurus, ones, shared_to=shared.shared_to,
                                          rule_pairs=rules).pairs.keys())
            n += 1
        return cls(n, total_len / n if n else 0.0, dict(counts), dict(pair_counts))

    def save(self, path: str | Path) -> None:
        """Write as JSON."""
        data: dict[str, Any] = {"kind": "document-frequencies", "n_docs": self.n_docs, "avg_len": self.avg_len,
                                "df": self.counts}
        if self.pairs is not None:
            data["pair_df"] = [[d, q, c] for (d, q), c in sorted(self.pairs.items())]
        Path(path).write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "DocumentFrequencies":
        """Read a file written by ``save``."""
        data = _read_json(path, "document-frequencies")
        df = data.get("df")
        if not isinstance(data.get("n_docs"), int) or not isinstance(df, dict):
            raise InputError("needs an integer 'n_docs' and a 'df' object", source=str(path))
        pairs = None
        if "pair_df" in data:
            try:
                pairs = {(str(d), str(q)): int(c) for d, q, c in data["pair_df"]}
            except (TypeError, ValueError):
                raise InputError("'pair_df' must be a list of [descriptor, qualifier, count]", source=str(path)) from None
        return cls(data["n_docs"], float(data.get("avg_len", 0.0)), {str(k): int(v) for k, v in df.items()}, pairs)


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
    def from_gold(cls, path: str | Path, thesaurus: "Thesaurus | None" = None) -> "PairHistory":
        """Learn the history from indexed records in the gold JSONL format (see ``evaluate.read_gold``).

        With the thesaurus, labels and synonyms in the records are resolved to ids (as the indexer names pairs).
        """
        from .evaluate import concept_key, read_gold

        d_ids: dict[str, str] = {}
        q_ids: dict[str, str] = {}
        if thesaurus is not None:
            for table, concepts in ((d_ids, thesaurus.descriptors.values()), (q_ids, thesaurus.qualifiers.values())):
                for c in concepts:
                    for name in (c.id, c.label, *c.synonyms):
                        table.setdefault(concept_key(name), c.id)

        def d(x: str) -> str:
            return d_ids.get(concept_key(x), x)

        h = cls()
        for rec in read_gold(path):
            h.add([d(x) for x in rec.descriptors], [(d(x), q_ids.get(concept_key(q), q)) for x, q in rec.pairs])
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
