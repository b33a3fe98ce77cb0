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
  document, whether it occurs in the title, where it first occurs, how often, and its length in words;
* the keyphrase's profile over the whole index (``esrank.ranking.profiles``, when the index has profiles): the
  cosine of the document with the summed embedding of the indexed documents carrying the keyphrase, and the mean
  cosine with them; 0 without profiles (the mix model is then fitted without these two);
* how well the neighbours carrying the keyphrase fit the document, judged by their *other* keyphrases in the pool:
  a neighbour's relevance is the mean cosine of its other keyphrases to the document (a semantic check on a BM25
  neighbour that shares only words), and its fit is the share of its other keyphrases that occur in the document;
  each as the best, the sum (relative to the pool's largest) and the mean over the neighbours carrying the
  keyphrase (0 for a neighbour with no other keyphrase).

Candidates are split by their PRMU class in the document: present ones (the phrase occurs) and absent ones are
scored by separate models (``esrank.ranking.mix.MixModel``), because what makes a good present keyphrase
(position, frequency) is not what makes a good absent one (neighbour evidence, prior, word overlap).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..corpus import Document
from ..text import StemmedText, prepare
from .candidates import CandidatePool

FEATURES = ("cosine", "vote_share", "log_neighbours", "best_rank_inverse", "best_score_share", "log_index_df",
            "concentration", "word_overlap", "in_title", "first_position", "log_occurrences", "words",
            "agreeing_neighbours", "log_agreement", "neighbour_relevance_best", "neighbour_relevance_sum",
            "neighbour_relevance_mean", "neighbour_fit_best", "neighbour_fit_sum", "neighbour_fit_mean",
            "profile_cosine", "profile_mean")
FREQUENCY_FEATURES = ("log_index_df", "concentration")  # need the index's keyphrase frequencies
PROFILE_FEATURES = ("profile_cosine", "profile_mean")  # need keyphrase profiles (esrank.ranking.profiles)


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
    present[:] = [f" {c.key} " in joined for c in pool.candidates]  # PRMU class P (esrank.text.classify_key)
    agreement: dict[int, int] = {}  # neighbour rank → how many candidates present in the document it carries
    carried: dict[int, list[float]] = {}  # neighbour rank → [candidates it carries, their summed cosine]
    for c, p, cos in zip(pool.candidates, present, cosines):
        for r in c.neighbour_ranks:
            if p:
                agreement[r] = agreement.get(r, 0) + 1
            tally = carried.setdefault(r, [0.0, 0.0])
            tally[0] += 1
            tally[1] += cos
    stems = prep.stems
    title_joined = title.joined if title is not None else ""
    rows = []
    for c, cos, vote, here in zip(pool.candidates, cosines, votes, present):
        words = c.key.split(" ")
        ranks = c.neighbour_ranks
        count = len(ranks)
        if here:
            needle = f" {c.key} "
            at = joined.find(needle)
            position, occurrences, overlap = joined.count(" ", 0, at) / length, math.log1p(joined.count(needle)), 1.0
            in_title = 1.0 if needle in title_joined else 0.0
        else:  # a phrase that does not occur is in neither the title nor the text
            position, occurrences, in_title = 1.0, 0.0, 0.0
            overlap = sum(1 for w in words if w in stems) / len(words)
        own = 1 if here else 0  # a present candidate does not agree with itself
        agreeing = agreed = 0
        relevance: list[float] = []
        fit: list[float] = []
        for r in ranks:
            other = agreement.get(r, 0) - own
            if other > 0:
                agreeing += 1
                agreed += other
            held, cos_sum = carried[r]
            others = int(held) - 1  # the neighbour's other keyphrases (leave this one out)
            relevance.append((cos_sum - cos) / others if others else 0.0)
            fit.append(other / others if others else 0.0)
        rows.append((
            cos,
            vote / top_vote if top_vote > 0 else 0.0,
            math.log1p(count),
            1.0 / min(ranks) if ranks else 0.0,
            max(c.bm25_scores) / top_score if c.bm25_scores and top_score > 0 else 0.0,
            math.log1p(c.index_df),
            math.log((count + 0.1) / (c.index_df + 1.0)),
            overlap,
            in_title,
            position,
            occurrences,
            float(len(words)),
            float(agreeing),
            math.log1p(agreed),
            max(relevance, default=0.0),
            sum(relevance),
            sum(relevance) / count if count else 0.0,
            max(fit, default=0.0),
            sum(fit),
            sum(fit) / count if count else 0.0,
            c.profile_cosine,
            c.profile_mean,
        ))
    x[:] = rows
    for col in (FEATURES.index("neighbour_relevance_sum"), FEATURES.index("neighbour_fit_sum")):
        top = x[:, col].max()
        if top > 0:
            x[:, col] /= top
    return x, present
