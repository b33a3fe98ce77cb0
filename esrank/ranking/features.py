"""Features of a candidate keyphrase for the neighbour-aware ranker (``--method mix``).

Three kinds of evidence, each standard in keyphrase work and none tied to one collection:

* the bi-encoder: the cosine of document and keyphrase embeddings;
* retrieval (the paper's neighbours): the keyphrase's share of the pool's top vote (summed BM25 of the neighbours
  carrying it), how many neighbours carry it, the best rank among them, the best neighbour's BM25 score relative to
  the pool's best, and the keyphrase's prior in the index — how many indexed documents carry it, and how
  concentrated it is in this document's neighbourhood (neighbours carrying it ÷ documents carrying it), and how
  far the neighbours carrying it agree with the document: how many of them also carry another candidate that
  occurs in the document, and how many such candidates they carry in all (a neighbour that shares the document's
  own keyphrases is better evidence than one that shares only words);
* the document itself (as in supervised extractors such as KEA): the share of the keyphrase's words found in the
  document, whether it occurs in the title, where it first occurs, how often, and its length in words.

Candidates are split by their PRMU class in the document: present ones (the phrase occurs) and absent ones are
scored by separate models (``esrank.ranking.mix.MixModel``), because what makes a good present keyphrase
(position, frequency) is not what makes a good absent one (neighbour evidence, prior, word overlap).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..corpus import Document
from ..text import StemmedText, classify_key, prepare
from .candidates import CandidatePool

FEATURES = ("cosine", "vote_share", "log_neighbours", "best_rank_inverse", "best_score_share", "log_index_df",
            "concentration", "word_overlap", "in_title", "first_position", "log_occurrences", "words",
            "agreeing_neighbours", "log_agreement")
FREQUENCY_FEATURES = ("log_index_df", "concentration")  # need the index's keyphrase frequencies


def candidate_features(doc: Document, pool: CandidatePool, cosines: Sequence[float],
                       prepared: StemmedText | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(features: one row per candidate in pool order, columns ``FEATURES``; present: whether each candidate
    occurs in the document — PRMU class P)."""
    n = len(pool.candidates)
    x = np.zeros((n, len(FEATURES)), dtype=np.float64)
    present = np.zeros(n, dtype=bool)
    if not n:
        return x, present
    prep = prepared if prepared is not None else prepare(doc.title, doc.text)
    title = prepare(doc.title, "") if doc.title else None
    joined = prep.joined
    length = max(joined.count(" ") - 1, 1)
    votes = [c.vote for c in pool.candidates]
    top_vote = max(votes, default=0.0)
    top_score = max((s for c in pool.candidates for s in c.bm25_scores), default=0.0)
    present[:] = [classify_key(c.key, prep) == "P" for c in pool.candidates]
    agreement: dict[int, int] = {}  # neighbour rank → how many candidates present in the document it carries
    for c, p in zip(pool.candidates, present):
        if p:
            for r in c.neighbour_ranks:
                agreement[r] = agreement.get(r, 0) + 1
    for i, (c, cos, vote) in enumerate(zip(pool.candidates, cosines, votes)):
        words = c.key.split(" ")
        needle = f" {c.key} "
        at = joined.find(needle)
        own = 1 if present[i] else 0  # a present candidate does not agree with itself
        others = [agreement.get(r, 0) - own for r in c.neighbour_ranks]
        x[i] = (
            cos,
            vote / top_vote if top_vote > 0 else 0.0,
            math.log1p(c.count),
            1.0 / min(c.neighbour_ranks) if c.neighbour_ranks else 0.0,
            max(c.bm25_scores) / top_score if c.bm25_scores and top_score > 0 else 0.0,
            math.log1p(c.index_df),
            math.log((c.count + 0.1) / (c.index_df + 1.0)),
            sum(w in prep.stems for w in words) / len(words),
            1.0 if title is not None and needle in title.joined else 0.0,
            joined.count(" ", 0, at) / length if at >= 0 else 1.0,
            math.log1p(joined.count(needle)) if at >= 0 else 0.0,
            float(len(words)),
            float(sum(1 for o in others if o > 0)),
            math.log1p(sum(others)),
        )
    return x, present
