"""Analysis and BM25 matrix building for the embedded index, vectorised with numpy.

Analysis: lowercase, words of two or more letters/digits (bm25s' default pattern), Lucene's English
stop words dropped, stemming with PyStemmer (Porter, as in the servers' english analyzer), each distinct word stemmed once. The matrix holds
Lucene's BM25 weights ``idf * tf / (tf + k1 * (1 - b + b * dl / avgdl))`` in bm25s' compressed-column
layout, so bm25s saves and loads it; ``Scorer`` ranks exhaustively (every document sharing a term with the
query is scored), a batch of queries in one sparse matrix product.
"""
from __future__ import annotations

import re
from typing import Callable, Iterable

import numpy as np

from bm25s.stopwords import STOPWORDS_EN

WORD_RE = re.compile(r"(?u)\b\w\w+\b")
STOPWORDS = {"en": STOPWORDS_EN, "english": STOPWORDS_EN}


class Analyzer:
    """Turns texts into arrays of term ids; new terms get new ids unless ``frozen``."""

    def __init__(self, language: str = "english", stopwords: str = "en",
                 vocab: dict[str, int] | None = None) -> None:
        if language in ("none", ""):  # no stemming (like the servers' 'standard' analyzer)
            self._stem: Callable[[list[str]], list[str]] = list
        else:
            import Stemmer

            self._stem = Stemmer.Stemmer(language).stemWords
        self._stop = frozenset(STOPWORDS.get(stopwords, ()))
        self.vocab: dict[str, int] = dict(vocab or {})  # stem → term id
        self._word_ids: dict[str, int] = {}  # surface word → term id (-1: stop word or unknown)
        self._names: list[str] = []  # term id → stem, built when first needed

    def _learn(self, words: Iterable[str], frozen: bool) -> None:
        new = list(words)
        if not new:
            return
        for w, s in zip(new, self._stem(new)):
            if w in self._stop:
                self._word_ids[w] = -1
            elif s in self.vocab:
                self._word_ids[w] = self.vocab[s]
            elif frozen:
                continue  # unknown to the index: not cached, the vocabulary may grow later
            else:
                self.vocab[s] = self._word_ids[w] = len(self.vocab)

    def term_ids(self, text: str, *, frozen: bool = False) -> np.ndarray:
        """Term ids of a text, in order (stop words, and with ``frozen`` unknown terms, dropped)."""
        words = WORD_RE.findall(text.lower())
        known = self._word_ids
        self._learn([w for w in dict.fromkeys(words) if w not in known], frozen)
        if frozen:
            ids = np.fromiter((known.get(w, -1) for w in words), dtype=np.int64, count=len(words))
        else:  # every word is known now
            ids = np.fromiter(map(known.__getitem__, words), dtype=np.int64, count=len(words))
        return ids[ids >= 0]

    def query_term_counts(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(term ids, frequencies) of the known terms of a query text: two words with one stem count twice."""
        ids, counts = np.unique(self.term_ids(text, frozen=True), return_counts=True)
        return ids, counts

    def term_names(self) -> list[str]:
        """The term (stem) of each term id."""
        if len(self._names) != len(self.vocab):
            names = [""] * len(self.vocab)
            for term, i in self.vocab.items():
                names[i] = term
            self._names = names
        return self._names

    def corpus_terms(self, texts: Iterable[str], chunk: int = 20000) -> tuple[np.ndarray, np.ndarray, int]:
        """(term id, document number) of every indexed word of a corpus, and the number of documents."""
        terms: list[np.ndarray] = []
        docs: list[np.ndarray] = []
        n_docs = 0
        words: list[str] = []
        counts: list[int] = []

        def flush() -> None:
            known = self._word_ids
            self._learn([w for w in dict.fromkeys(words) if w not in known], False)  # ids in order of first use
            ids = np.fromiter(map(known.__getitem__, words), dtype=np.int64, count=len(words))
            doc_of = np.repeat(np.arange(n_docs - len(counts), n_docs, dtype=np.int64), counts)
            keep = ids >= 0
            terms.append(ids[keep])
            docs.append(doc_of[keep])
            words.clear()
            counts.clear()

        for text in texts:
            w = WORD_RE.findall(text.lower())
            words.extend(w)
            counts.append(len(w))
            n_docs += 1
            if len(counts) >= chunk:
                flush()
        if counts:
            flush()
        if not terms:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), n_docs
        return np.concatenate(terms), np.concatenate(docs), n_docs


def bm25_matrix(terms: np.ndarray, doc_of: np.ndarray, n_docs: int, n_terms: int, k1: float, b: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(data, indices, indptr) of the docs × terms BM25 weight matrix, compressed by term column."""
    lengths = np.bincount(doc_of, minlength=n_docs)
    if n_docs == 0 or len(terms) == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.int32), np.zeros(n_terms + 1, np.int64)
    keys, tf = np.unique(terms * n_docs + doc_of, return_counts=True)  # sorted by term, then document
    term = keys // n_docs
    doc = keys - term * n_docs
    df = np.bincount(term, minlength=n_terms)
    idf = np.log1p((n_docs - df + 0.5) / (df + 0.5))
    norm = k1 * (1.0 - b + b * lengths / lengths.mean())
    data = (idf[term] * tf / (tf + norm[doc])).astype(np.float32)
    indptr = np.concatenate([[0], np.cumsum(df)]).astype(np.int64)
    return data, doc.astype(np.int32), indptr


class Scorer:
    """Exhaustive BM25 top-k over the weight matrix, a batch of queries at a time (one sparse product)."""

    def __init__(self, data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, n_docs: int) -> None:
        import scipy.sparse as sp

        self.n_docs = n_docs
        self.n_terms = len(indptr) - 1
        self.matrix = sp.csr_matrix((data, indices, indptr), shape=(self.n_terms, n_docs))  # terms × documents
        self.rows_per_product = max(1, 8_000_000 // max(n_docs, 1))  # bounds the dense score block

    def idf(self) -> np.ndarray:
        """The BM25 idf of every term, from its document frequency in the matrix."""
        from .query import bm25_idf

        return np.asarray(bm25_idf(self.n_docs, np.diff(self.matrix.indptr).astype(np.float64)))

    def top_k(self, queries: list[tuple[np.ndarray, np.ndarray]], ks: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
        """For each query (term ids, weights: a term's score counts ``weight`` times) its ``ks[i]`` best
        (documents, scores)."""
        import scipy.sparse as sp

        out: list[tuple[np.ndarray, np.ndarray]] = []
        for start in range(0, len(queries), self.rows_per_product):
            block = queries[start:start + self.rows_per_product]
            rows = np.repeat(np.arange(len(block)), [len(q[0]) for q in block])
            cols = np.concatenate([q[0] for q in block]).astype(np.int64)
            vals = np.concatenate([q[1] for q in block]).astype(np.float32)
            q = sp.csr_matrix((vals, (rows, cols)), shape=(len(block), self.n_terms))
            scores = (q @ self.matrix).toarray()
            for row, k in zip(scores, ks[start:start + len(block)]):
                k = min(k, int(np.count_nonzero(row)))  # idf > 0: only documents sharing a term score above 0
                if k <= 0:
                    out.append((np.zeros(0, np.int64), np.zeros(0, np.float32)))
                    continue
                best = np.argpartition(-row, k - 1)[:k]
                best = best[np.lexsort((best, -row[best]))]  # best first; ties by document order
                out.append((best, row[best]))
        return out
