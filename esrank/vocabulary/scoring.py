"""The scoring steps of the thesaurus indexer, each a small function over plain mappings.

1. ``weighted_counts``: occurrences per descriptor, weighted by the field they occur in;
2. ``share_hierarchy``: a parent's count is shared among its narrower descriptors present, parent dropped;
3. ``tfidf``: tf saturated by a document-length normalisation, times the Robertson–Spärck Jones idf;
4. ``apply_check_tags``: after weighting, a check tag seen more than once gets the top keyword's score (and the
   indexer exempts it from the cut-off);
5. ``form_pairs`` / ``score_pairs``: descriptor/qualifier pairs (an isolated qualifier goes to one of the two most
   frequent keywords), validated by the thesaurus and the pair history, scored with the same tf·idf as
   descriptors (pair frequency in the document, pair document frequency in the collection);
6. ``adaptive_cutoff`` and ``is_major``: keep terms above the largest relative score gap; major/minor.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from .automaton import Match
from .thesaurus import Thesaurus


def weighted_counts(matches: Iterable[Match], weights: Mapping[str, float]) -> dict[str, float]:
    """Descriptor occurrence counts, each occurrence weighted by its field (unknown fields weigh 1)."""
    out: dict[str, float] = {}
    for m in matches:
        if m.kind == "D":
            out[m.concept] = out.get(m.concept, 0.0) + float(weights.get(m.field, 1.0))
    return out


def occurrences(matches: Iterable[Match]) -> Counter[str]:
    """Raw (unweighted) number of occurrences of each descriptor."""
    return Counter(m.concept for m in matches if m.kind == "D")


@dataclass
class Shared:
    """Result of hierarchy sharing: new counts, and which parents went to which children."""

    counts: dict[str, float]
    shared_to: dict[str, list[str]] = field(default_factory=dict)  # dropped parent -> receiving children


def share_hierarchy(counts: Mapping[str, float], thesaurus: Thesaurus) -> Shared:
    """Share each present parent's count equally among its present narrower descriptors; drop the parent."""
    out = dict(counts)
    shared_to: dict[str, list[str]] = {}
    below_of: dict[str, set[str]] = {}
    for d in out:
        for a in thesaurus.ancestors(d):
            if a in out:
                below_of.setdefault(a, set()).add(d)
    for parent in sorted(below_of, key=lambda d: (-thesaurus.depth(d), d)):  # most specific parents first
        below = sorted(d for d in below_of[parent] if d in out)  # children dropped as parents are skipped
        if not below:
            continue
        share = out.pop(parent) / len(below)
        for child in below:
            out[child] += share
        shared_to[parent] = below
    return Shared(out, shared_to)


def promoted_check_tags(scores: Mapping[str, float], occurrences: Mapping[str, int],
                        thesaurus: Thesaurus) -> set[str]:
    """The check tags that occur more than once in the document (they take the top score and are always kept)."""
    return {d for d in scores if thesaurus.descriptors[d].check_tag and occurrences.get(d, 0) > 1}


def apply_check_tags(scores: Mapping[str, float], occurrences: Mapping[str, int],
                     thesaurus: Thesaurus) -> dict[str, float]:
    """Give each check tag occurring more than once the top keyword's (weighted) score; apply after ``tfidf``."""
    out = dict(scores)
    others = [s for d, s in out.items() if not thesaurus.descriptors[d].check_tag]
    top = max(others) if others else max(out.values(), default=0.0)
    for d in promoted_check_tags(out, occurrences, thesaurus):
        out[d] = max(out[d], top)
    return out


def rsj_idf(n_docs: int, df: int) -> float:
    """Robertson–Spärck Jones idf, kept positive: log(1 + (N − df + 0.5) / (df + 0.5))."""
    return math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))


def tfidf(scores: Mapping[str, float], doc_len: int, *, n_docs: int = 0, df: Mapping[str, int] | None = None,
          avg_len: float = 0.0, k1: float = 1.2, b: float = 0.75) -> dict[str, float]:
    """BM25-style weight: tf·(k1+1)/(tf + k1·(1−b+b·len/avglen)) · idf (idf = 1 without a collection)."""
    norm = k1 * ((1.0 - b) + b * (doc_len / avg_len)) if avg_len > 0 else k1
    out: dict[str, float] = {}
    for d, tf in scores.items():
        idf = rsj_idf(n_docs, (df or {}).get(d, 0)) if n_docs > 0 else 1.0
        out[d] = tf * (k1 + 1.0) / (tf + norm) * idf
    return out


@dataclass
class PairEvidence:
    """Support of one descriptor/qualifier pair: weighted occurrences and the qualifier matches behind it."""

    support: float = 0.0
    matches: list[Match] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # per match: "sentence", "isolated" or "rule"

    @property
    def via(self) -> set[str]:
        """The ways this pair was found."""
        return set(self.sources)


@dataclass
class Pairs:
    """The valid pairs of a document and how many candidate pairs were rejected as not allowed."""

    pairs: dict[tuple[str, str], PairEvidence]
    rejected: int = 0


def form_pairs(matches: Sequence[Match], descriptor_counts: Mapping[str, float], thesaurus: Thesaurus,
               weights: Mapping[str, float], *, shared_to: Mapping[str, Sequence[str]] | None = None,
               rule_pairs: Iterable[tuple[str, str, Match]] = (),
               history: "Mapping[tuple[str, str], int] | None" = None,
               history_filter: bool = False) -> Pairs:
    """Pairs from qualifiers in a descriptor's sentence, isolated qualifiers and rules, validated.

    ``descriptor_counts`` are the descriptors' frequencies in the document (after hierarchy sharing): an
    isolated qualifier attaches to one of the two most frequent. A pair the thesaurus does not allow is
    rejected; with ``history_filter``, so is a pair never assigned in the ``history``.
    """
    descriptor_scores = descriptor_counts
    shared_to = shared_to or {}
    history = history or {}

    def allowed(did: str, qid: str) -> bool:
        return thesaurus.pair_allowed(did, qid) and (not history_filter or history.get((did, qid), 0) > 0)

    def targets(did: str) -> list[str]:
        if did in descriptor_scores:
            return [did]
        return [c for c in shared_to.get(did, ()) if c in descriptor_scores]

    by_sentence: dict[int, list[str]] = {}
    for m in matches:
        if m.kind == "D":
            for t in targets(m.concept):
                by_sentence.setdefault(m.sentence, []).append(t)
    top2 = sorted(descriptor_scores, key=lambda d: (-descriptor_scores[d], d))[:2]
    out: dict[tuple[str, str], PairEvidence] = {}
    rejected = 0

    def add(did: str, qid: str, m: Match, via: str) -> None:
        nonlocal rejected
        if not allowed(did, qid):
            rejected += 1
            return
        ev = out.setdefault((did, qid), PairEvidence())
        ev.support += float(weights.get(m.field, 1.0))
        ev.matches.append(m)
        ev.sources.append(via)

    for m in matches:
        if m.kind != "Q":
            continue
        here = list(dict.fromkeys(by_sentence.get(m.sentence, ())))
        if here:
            for did in here:
                add(did, m.concept, m, "sentence")
            continue
        ok = [d for d in top2 if allowed(d, m.concept)]
        if ok:
            best = max(ok, key=lambda d: (history.get((d, m.concept), 0), descriptor_scores[d]))
            add(best, m.concept, m, "isolated")
        elif top2:
            rejected += 1
    for did, qid, m in rule_pairs:
        for t in targets(did):
            add(t, qid, m, "rule")
    return Pairs(out, rejected)


def pair_key(descriptor: str, qualifier: str) -> str:
    """The key of a descriptor/qualifier pair among document-frequency keys ("D\tQ")."""
    return f"{descriptor}\t{qualifier}"


def score_pairs(pairs: Mapping[tuple[str, str], PairEvidence], doc_len: int, *, n_docs: int = 0,
                df: Mapping[tuple[str, str], int] | None = None, avg_len: float = 0.0, k1: float = 1.2,
                b: float = 0.75, history_prob: Mapping[tuple[str, str], float] | None = None,
                prior_weight: float = 0.0) -> dict[tuple[str, str], float]:
    """Pair score: ``tfidf`` of the pair's weighted frequency in the document and its document frequency in the
    collection, times the optional history prior (1 + weight · P(qualifier | descriptor)), which never demotes."""
    keys = {pair_key(*p): p for p in pairs}
    weighted = tfidf({k: pairs[p].support for k, p in keys.items()}, doc_len, n_docs=n_docs,
                     df={k: (df or {}).get(p, 0) for k, p in keys.items()}, avg_len=avg_len, k1=k1, b=b)
    history_prob = history_prob or {}
    return {p: weighted[k] * (1.0 + prior_weight * history_prob.get(p, 0.0)) for k, p in keys.items()}


def adaptive_cutoff(scores: Sequence[float], min_terms: int = 1, max_terms: int = 10) -> int:
    """How many of the (descending) scores to keep: cut at the largest relative gap, within [min, max]."""
    n = len(scores)
    if n <= min_terms:
        return n
    best_k, best_gap = min(max_terms, n), -1.0
    for k in range(max(min_terms, 1), min(max_terms, n - 1) + 1):
        hi, lo = scores[k - 1], scores[k]
        gap = (hi - lo) / hi if hi > 0 else 0.0
        if gap >= best_gap:  # ties: keep more
            best_k, best_gap = k, gap
    return best_k


def is_major(score: float, top: float, ratio: float = 0.5) -> bool:
    """Major heading when the score reaches ``ratio`` times the top score."""
    return top > 0 and score >= ratio * top
