"""Corpus statistics (the paper's Table 1): sizes, lengths, vocabulary and PRMU distribution."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from ..corpus import Document
from ..text import PRMU, classify_key, is_word, prepare, stemmed_key, tokenize


@dataclass
class CorpusStats:
    """Table 1 figures for one corpus (or one domain of it)."""

    name: str
    documents: int = 0
    tokens_mean: float = 0.0
    tokens_sd: float = 0.0
    vocabulary: int = 0
    keyphrases_mean: float = 0.0
    keyphrases_sd: float = 0.0
    keyphrase_tokens_mean: float = 0.0
    keyphrase_tokens_sd: float = 0.0
    prmu_percent: dict[str, float] = field(default_factory=dict)

    def as_row(self) -> dict[str, object]:
        """Flat dict for tables (CSV/JSON/Markdown)."""
        row: dict[str, object] = {
            "corpus": self.name, "documents": self.documents,
            "tokens/doc": f"{self.tokens_mean:.1f} ± {self.tokens_sd:.1f}", "vocabulary": self.vocabulary,
            "kp/doc": f"{self.keyphrases_mean:.2f} ± {self.keyphrases_sd:.2f}",
            "tokens/kp": f"{self.keyphrase_tokens_mean:.2f} ± {self.keyphrase_tokens_sd:.2f}",
        }
        for c in PRMU:
            row[f"%{c}"] = round(self.prmu_percent.get(c, 0.0), 1)
        return row

    def as_record(self) -> dict[str, object]:
        """Flat dict of numbers for JSON (means and standard deviations apart, PRMU in percent)."""
        rec: dict[str, object] = {
            "corpus": self.name, "documents": self.documents, "tokens_per_doc": round(self.tokens_mean, 3),
            "tokens_per_doc_sd": round(self.tokens_sd, 3), "vocabulary": self.vocabulary,
            "keyphrases_per_doc": round(self.keyphrases_mean, 3), "keyphrases_per_doc_sd": round(self.keyphrases_sd, 3),
            "tokens_per_keyphrase": round(self.keyphrase_tokens_mean, 3),
            "tokens_per_keyphrase_sd": round(self.keyphrase_tokens_sd, 3),
        }
        for c in PRMU:
            rec[f"percent_{c}"] = round(self.prmu_percent.get(c, 0.0), 3)
        return rec


class _Acc:
    def __init__(self, name: str) -> None:
        self.name = name
        self.doc_tokens: list[int] = []
        self.kp_counts: list[int] = []
        self.kp_tokens: list[int] = []
        self.vocab: set[str] = set()
        self.prmu: Counter[str] = Counter()

    def add(self, doc: Document, words: list[str], classes: Sequence[str], kp_lens: list[int]) -> None:
        self.doc_tokens.append(len(words))
        self.vocab.update(words)
        self.kp_counts.append(len(doc.keyphrases))
        self.kp_tokens.extend(kp_lens)
        self.prmu.update(classes)

    def result(self) -> CorpusStats:
        def ms(xs: list[int]) -> tuple[float, float]:
            return (float(np.mean(xs)), float(np.std(xs))) if xs else (0.0, 0.0)

        total = sum(self.prmu.values()) or 1
        return CorpusStats(self.name, len(self.doc_tokens), *ms(self.doc_tokens), len(self.vocab),
                           *ms(self.kp_counts), *ms(self.kp_tokens),
                           {c: 100.0 * self.prmu[c] / total for c in PRMU})


def corpus_stats(docs: Iterable[Document], name: str = "corpus", *, by_group: bool = True,
                 strict: bool = False) -> list[CorpusStats]:
    """Table 1 for a corpus: the whole corpus first, then one row per dataset/domain if there are several."""
    total = _Acc(name)
    groups: dict[str, _Acc] = {}
    for doc in docs:
        words = [t.lower() for t in tokenize(doc.full_text) if is_word(t)]
        prepared = prepare(doc.title, doc.text, strict=strict)
        keys = [stemmed_key(k) for k in doc.keyphrases]
        classes = [classify_key(k, prepared) for k in keys if k]
        kp_lens = [len(k.split()) for k in keys if k]
        total.add(doc, words, classes, kp_lens)
        g = doc.meta.get("dataset") or doc.meta.get("domain")
        if by_group and isinstance(g, str):
            groups.setdefault(g, _Acc(g)).add(doc, words, classes, kp_lens)
    out = [total.result()]
    if len(groups) > 1:
        out += [groups[g].result() for g in sorted(groups)]
    return out
