"""The scoring steps of the thesaurus indexer, each a small function over plain mappings.

1. ``weighted_counts``: occurrences per descriptor, weighted by the field they occur in;
2. ``share_hierarchy``: a parent's count is shared among its narrower descriptors present, parent dropped;
3. ``apply_check_tags``: a check tag seen more than once gets the score of the most frequent descriptor;
4. ``tfidf``: tf saturated by a document-length normalisation, times the Robertson–Spärck Jones idf;
5. ``form_pairs`` / ``score_pairs``: descriptor/qualifier pairs, validated and scored up by pair history;
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


def apply_check_tags(scores: Mapping[str, float], occurrences: Mapping[str, int],
                     thesaurus: Thesaurus) -> dict[str, float]:
    """Raise each check tag that occurs more than once to the score of the most frequent descriptor."""
    out = dict(scores)
    others = [s for d, s in out.items() if not thesaurus.descriptors[d].check_tag]
    top = max(others) if others else max(out.values(), default=0.0)
    for d in out:
        if thesaurus.descriptors[d].check_tag and occurrences.get(d, 0) > 1:
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


def form_pairs(matches: Sequence[Match], descriptor_scores: Mapping[str, float], thesaurus: Thesaurus,
               weights: Mapping[str, float], *, shared_to: Mapping[str, Sequence[str]] | None = None,
               rule_pairs: Iterable[tuple[str, str, Match]] = (),
               history: "Mapping[tuple[str, str], int] | None" = None) -> Pairs:
    """Pairs from qualifiers in a descriptor's sentence, isolated qualifiers (top-2 descriptors) and rules."""
    shared_to = shared_to or {}
    history = history or {}

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
        if not thesaurus.pair_allowed(did, qid):
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
        allowed = [d for d in top2 if thesaurus.pair_allowed(d, m.concept)]
        if allowed:
            best = max(allowed, key=lambda d: (history.get((d, m.concept), 0), descriptor_scores[d]))
            add(best, m.concept, m, "isolated")
        elif top2:
            rejected += 1
    for did, qid, m in rule_pairs:
        for t in targets(did):
            add(t, qid, m, "rule")
    return Pairs(out, rejected)


def score_pairs(pairs: Mapping[tuple[str, str], PairEvidence], descriptor_scores: Mapping[str, float],
                history_prob: Mapping[tuple[str, str], float] | None = None,
                history_weight: float = 1.0) -> dict[tuple[str, str], float]:
    """Pair score: descriptor score · support/(support+1) · (1 + weight · P(qualifier | descriptor) in history)."""
    history_prob = history_prob or {}
    out: dict[tuple[str, str], float] = {}
    for (did, qid), ev in pairs.items():
        strength = ev.support / (ev.support + 1.0)
        out[(did, qid)] = descriptor_scores[did] * strength * (1.0 + history_weight * history_prob.get((did, qid), 0.0))
    return out


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
