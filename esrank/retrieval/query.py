"""The query a document sends to a BM25 index: its analysed terms with their frequencies, bounded in number.

A document queries with every analysed term of its title and text, each weighted by how often the document
uses it — what bm25s and a Lucene ``match`` query do with a repeated query word (the score of a term counts
once per occurrence). To stay below the servers' clause limits (OpenSearch's default ``max_clause_count`` is
1024) a document with more distinct terms than ``max_terms`` keeps the ``max_terms`` terms of highest
tf·idf, with the idf of the index being queried (as ``more_like_this`` does); ties go to the smaller term.
Every backend builds its query this way from its own analysis and its own idf, so the weights are the same
wherever the analysers agree. Only analysed terms reach a server, as ``term`` queries: Lucene syntax or JSON
inside a document can never change the query.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..corpus import Document

DEFAULT_MAX_TERMS = 512  # distinct terms per query; well below OpenSearch's default max_clause_count (1024)
DEFAULT_POSTINGS_BUDGET = 1_600_000  # postings an embedded-index query scores at most (docs/retrieval.md)


def query_text(document: Document) -> str:
    """The text a document queries with: its title and its text (what each backend analyses)."""
    return f"{document.title}\n{document.text}" if document.title else document.text


def bm25_idf(n_docs: float, df: np.ndarray | float) -> np.ndarray | float:
    """Lucene's BM25 idf ``ln(1 + (N - df + 0.5) / (df + 0.5))`` (the servers' and the embedded index's)."""
    if isinstance(df, np.ndarray):
        return np.log1p((n_docs - df + 0.5) / (df + 0.5))
    return math.log1p((n_docs - df + 0.5) / (df + 0.5))


def top_terms(terms: Sequence[str], tf: np.ndarray, idf: np.ndarray, max_terms: int) -> np.ndarray:
    """Positions of the terms a query keeps: all when at most ``max_terms``, else the highest tf·idf (ties: term)."""
    n = len(terms)
    if n <= max_terms:
        return np.arange(n)
    weight = np.asarray(tf, dtype=np.float64) * np.asarray(idf, dtype=np.float64)
    order = sorted(range(n), key=lambda i: (-weight[i], terms[i]))
    return np.array(sorted(order[:max_terms]), dtype=np.int64)
