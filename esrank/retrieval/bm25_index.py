"""Analysis, BM25 matrix building and scoring for the embedded index, vectorised with numpy or compiled with numba.

Analysis: lowercase, words of two or more letters/digits (bm25s' default pattern), Lucene's English
stop words dropped, stemming with PyStemmer (Porter, as in the servers' english analyzer; ``none`` for no
stemming), each distinct word stemmed once. A corpus is analysed a chunk of documents at a time (word
characters classified per code point, words hashed: in one compiled pass with numba, else with numpy), so only
distinct words go through Python. The
matrix holds Lucene's BM25 weights ``idf * tf / (tf + k1 * (1 - b + b * dl / avgdl))`` in bm25s'
compressed-column layout, so bm25s saves and loads it (``impact_order`` gives its postings again, each term's by
decreasing weight). ``Scorer`` ranks exhaustively (every document sharing a term with the query is scored) as
long as a query's terms hold at most a postings budget, and beyond it scores the highest contributions only and
rescores its best candidates exactly: with numba, a compiled term-at-a-time kernel on all cores; without it, one
product of the document-major matrix with the batch's dense query weights (a query over the budget: its kept
postings added up).
"""
from __future__ import annotations

import re
import threading
from typing import Any, Callable, Iterable

import numpy as np

from bm25s.stopwords import STOPWORDS_EN

WORD_RE = re.compile(r"(?u)\b\w\w+\b")
_WORD_CHAR = re.compile(r"\w")
_WORD_ASCII = np.array([_WORD_CHAR.match(chr(c)) is not None for c in range(128)], dtype=bool)
_P = np.uint64(1_000_003)  # odd: invertible modulo 2**64
_P_INV = np.uint64(pow(1_000_003, -1, 2 ** 64))
STOPWORDS = {"en": STOPWORDS_EN, "english": STOPWORDS_EN}
_MAX_UNKNOWN = 1_000_000  # remembered hashes of query words unknown to the index (then forgotten at once)


_POWERS: list[np.ndarray] = [np.ones(1, np.uint64), np.ones(1, np.uint64)]


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """P^i and P^-i modulo 2**64 for i < n (computed once, grown when needed)."""
    if len(_POWERS[0]) < n:
        size = max(n, 2 * len(_POWERS[0]))
        with np.errstate(over="ignore"):
            for j, base in enumerate((_P, _P_INV)):
                arr = np.empty(size, dtype=np.uint64)
                arr[0] = 1
                arr[1:] = base
                _POWERS[j] = np.cumprod(arr, dtype=np.uint64)
    return _POWERS[0], _POWERS[1]


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
        self._hash_ids: dict[int, int] = {}  # 64-bit word hash → term id (-1: stop word), for corpus_terms
        self._hash_unknown: set[int] = set()  # hashes of words unknown to a frozen vocabulary (until it grows)

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
                self._hash_unknown.clear()

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

    def queries_term_counts(self, texts: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """``query_term_counts`` of each text, analysed together (vectorised, as ``corpus_terms``)."""
        terms, doc_of, n = self.corpus_terms(texts, frozen=True)
        width = max(len(self.vocab), 1)
        keys, counts = np.unique(doc_of * width + terms, return_counts=True)  # by document, then term
        doc = keys // width
        bounds = np.searchsorted(doc, np.arange(n + 1))
        ids = keys - doc * width
        return [(ids[bounds[i]:bounds[i + 1]], counts[bounds[i]:bounds[i + 1]]) for i in range(n)]

    def term_names(self) -> list[str]:
        """The term (stem) of each term id."""
        if len(self._names) != len(self.vocab):
            names = [""] * len(self.vocab)
            for term, i in self.vocab.items():
                names[i] = term
            self._names = names
        return self._names

    def corpus_terms(self, texts: Iterable[str], chunk: int = 4000, *, frozen: bool = False
                     ) -> tuple[np.ndarray, np.ndarray, int]:
        """(term id, document number) of every indexed word of a corpus, and the number of documents
        (with ``frozen``, words unknown to the vocabulary are dropped instead of added).

        Vectorised: a chunk of documents is lowercased and joined, its code points classified as word
        characters (``\\w``, as ``WORD_RE``), each run of two or more word characters hashed (64-bit
        polynomial hash; one compiled pass with numba, numpy array operations without), and only the distinct
        words of the chunk go through Python (stemming, vocabulary). The tokens are the same as
        ``WORD_RE.findall`` gives.
        """
        terms: list[np.ndarray] = []
        docs: list[np.ndarray] = []
        n_docs = 0
        batch: list[str] = []
        for text in texts:
            batch.append(text.lower())
            if len(batch) >= chunk:
                t, d = self._chunk_terms(batch, frozen)
                terms.append(t)
                docs.append(d + n_docs)
                n_docs += len(batch)
                batch = []
        if batch:
            t, d = self._chunk_terms(batch, frozen)
            terms.append(t)
            docs.append(d + n_docs)
            n_docs += len(batch)
        if not terms:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), n_docs
        return np.concatenate(terms), np.concatenate(docs), n_docs

    def _chunk_terms(self, lowered: list[str], frozen: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(term id, document number within the chunk) of the words of lowercased texts."""
        joined = "\n".join(lowered)
        cps = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32)
        if len(cps) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        high = cps >= 128
        uniq_high = np.unique(cps[high]) if high.any() else np.zeros(0, np.uint32)
        high_word = np.array([_WORD_CHAR.match(chr(int(c))) is not None for c in uniq_high], dtype=bool)
        doc_starts = np.cumsum([0] + [len(t) + 1 for t in lowered[:-1]])
        kernels = _numba_kernels()
        if kernels is not None:  # one compiled pass: words, their documents, distinct words by first use
            tok_word, doc_of, w_start, w_end, uniq_hash = kernels.tokenize(
                cps, _WORD_ASCII, uniq_high, high_word, doc_starts.astype(np.int64), _P)
        else:
            is_word = _WORD_ASCII[np.minimum(cps, 127)]
            if len(uniq_high):
                is_word[high] = high_word[np.searchsorted(uniq_high, cps[high])]
            edge = np.diff(np.concatenate(([False], is_word, [False])).astype(np.int8))
            starts = np.flatnonzero(edge == 1)
            ends = np.flatnonzero(edge == -1)
            long_enough = ends - starts >= 2
            starts, ends = starts[long_enough], ends[long_enough]
            # position-independent hash of each run: (H[end] - H[start]) · P^-start, H the prefix sums of c·P^i
            powers, inverse = _powers(len(cps))
            with np.errstate(over="ignore"):
                prefix = np.zeros(len(cps) + 1, dtype=np.uint64)
                np.cumsum(cps.astype(np.uint64) * powers[:len(cps)], dtype=np.uint64, out=prefix[1:])
                hashes = (prefix[ends] - prefix[starts]) * inverse[starts]
            uniq_hash, first, inv = np.unique(hashes, return_index=True, return_inverse=True)
            tok_word = inv.reshape(-1)
            w_start, w_end = starts[first], ends[first]
            doc_of = np.searchsorted(doc_starts, starts, side="right") - 1
        if len(tok_word) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        known = self._hash_ids
        if len(self._hash_unknown) > _MAX_UNKNOWN:  # a long-running server meets ever new words: stay bounded
            self._hash_unknown.clear()
        unknown = self._hash_unknown if frozen else ()
        ids_of_uniq = np.fromiter((known.get(h, -1 if h in unknown else -2) for h in uniq_hash.tolist()),
                                  dtype=np.int64, count=len(uniq_hash))
        new = np.flatnonzero(ids_of_uniq == -2)
        if len(new):
            new = new[np.argsort(w_start[new], kind="stable")]  # ids in order of first use
            words = [joined[w_start[j]:w_end[j]] for j in new]
            self._learn([w for w in words if w not in self._word_ids], frozen)
            for j, w in zip(new.tolist(), words):
                h = int(uniq_hash[j])
                if w in self._word_ids:
                    known[h] = ids_of_uniq[j] = self._word_ids[w]
                else:  # frozen and unknown to the index: dropped, remembered until the vocabulary grows
                    self._hash_unknown.add(h)
                    ids_of_uniq[j] = -1
        ids = ids_of_uniq[tok_word]
        keep = ids >= 0
        return ids[keep], doc_of[keep].astype(np.int64)


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


def impact_order(data: np.ndarray, indices: np.ndarray, indptr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(data, indices) with each term's postings in decreasing weight (impact), ties by document order."""
    if len(data) == 0:
        return data, indices
    term = np.repeat(np.arange(len(indptr) - 1, dtype=np.uint64), np.diff(indptr))
    # positive float32 weights order as their bit patterns: one 64-bit key, term ascending then weight descending
    key = (term << np.uint64(32)) | (np.uint64(0xFFFFFFFF) - data.view(np.uint32).astype(np.uint64))
    del term
    order = np.argsort(key, kind="stable")  # stable: within a term and weight, document order is kept
    return data[order], indices[order]


RESCORE_DEPTH = 16  # a query cut by the budget rescores its 16 · k best candidates exactly (docs/retrieval.md)


class Scorer:
    """BM25 top-k over the weight matrix, a batch of queries at a time, each query scoring at most ``budget``
    postings (None: every posting, exhaustive).

    A query's postings are ranked by their contribution ``float32(weight · data)``; when its terms hold more
    than ``budget`` postings, only those at or above the smallest cut-off keeping at most ``budget`` are scored
    (anytime ranking: the highest contributions first), read from a copy of the postings with each term's in
    decreasing weight (``impact_order``: given as ``impact``, else made on first need); its ``depth · k`` best
    documents by these partial scores are then rescored exactly from the document-major matrix, and the k best of
    those kept (``depth`` 0: the partial scores are returned). Otherwise every posting is scored, and the result
    is the exhaustive one. With numba installed, a compiled kernel scores the batch's queries on all cores
    (``esrank.retrieval.bm25_kernels``); without it, numpy multiplies the document-major matrix (documents ×
    terms, compressed rows) by the batch's dense query-weight block (terms × queries), and a query over the
    budget adds up its kept postings alone. Both give the same documents and the same float32 scores: a score
    sums ``weight · data`` over the query terms in ascending term order, and ties go to the earlier document.
    ``last_scored`` holds the postings each query of the last batch scored.
    """

    def __init__(self, data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, n_docs: int, *,
                 kernel: str = "auto", budget: int | None = None,
                 impact: tuple[np.ndarray, np.ndarray] | None = None, depth: int = RESCORE_DEPTH) -> None:
        import scipy.sparse as sp

        if kernel not in ("auto", "numba", "numpy"):
            raise ValueError(f"unknown scoring kernel {kernel!r} (auto, numba or numpy)")
        if budget is not None and budget < 1:
            raise ValueError(f"the postings budget must be at least 1 (or None for none), not {budget}")
        self.kernel = kernel  # auto: numba when it is installed, else numpy
        self.budget = budget
        self.depth = depth  # a cut query rescores its depth · k best candidates exactly (0: none)
        self.n_docs = n_docs
        self.n_terms = len(indptr) - 1
        self.data, self.indices, self.indptr = data, indices, indptr
        self.lengths = np.diff(indptr)
        self._impact = impact  # (data, indices) in impact order
        self._impact_lock = threading.Lock()
        self._samples: tuple[int, np.ndarray, np.ndarray] | None = None  # (stride, samples, where each term's start)
        self.matrix = sp.csr_matrix((data, indices, indptr), shape=(self.n_terms, n_docs))  # terms × documents
        self._by_doc: Any = None  # documents × terms, built for the numpy scorer
        self.rows_per_product = max(8, min(64, 3_200_000 // max(n_docs, 1)))
        self._scratch = threading.local()
        self.last_scored: np.ndarray = np.zeros(0, np.int64)  # postings scored per query of the last batch

    def by_doc(self) -> Any:
        """The document-major matrix (documents × terms, compressed rows, terms ascending; made once)."""
        with self._impact_lock:
            if self._by_doc is None:
                self._by_doc = self.matrix.T.tocsr()
                self._by_doc.sort_indices()
            return self._by_doc

    def impact(self) -> tuple[np.ndarray, np.ndarray]:
        """The postings (data, indices) with each term's in decreasing weight, ties by document (made once)."""
        with self._impact_lock:
            if self._impact is None:
                self._impact = impact_order(self.data, self.indices, self.indptr)
            return self._impact

    def samples(self, stride: int) -> tuple[np.ndarray, np.ndarray]:
        """Every ``stride``-th impact-ordered weight of each term, and where each term's samples start (made once)."""
        i_data = self.impact()[0]
        with self._impact_lock:
            if self._samples is None or self._samples[0] != stride:
                per_term = (self.lengths + stride - 1) // stride
                s_ptr = np.concatenate(([0], np.cumsum(per_term))).astype(np.int64)
                first = np.repeat(self.indptr[:-1], per_term)
                step = np.arange(int(s_ptr[-1]), dtype=np.int64) - np.repeat(s_ptr[:-1], per_term)
                self._samples = (stride, i_data[first + stride * step], s_ptr)
            return self._samples[1], self._samples[2]

    def idf(self) -> np.ndarray:
        """The BM25 idf of every term, from its document frequency in the matrix."""
        from .query import bm25_idf

        return np.asarray(bm25_idf(self.n_docs, self.lengths.astype(np.float64)))

    def top_k(self, queries: list[tuple[np.ndarray, np.ndarray]], ks: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
        """For each query (term ids, weights: a term's score counts ``weight`` times) its ``ks[i]`` best
        (documents, scores), best first, ties by document order."""
        kernels = _numba_kernels() if self.kernel != "numpy" else None
        if kernels is None:
            if self.kernel == "numba":
                raise RuntimeError("the numba scoring kernel needs numba (pip install numba)")
            return self._top_k_numpy([_merged(ids, w) for ids, w in queries], ks)
        return self._top_k_compiled(kernels, queries, ks)

    def _top_k_compiled(self, kernels: Any, queries: list[tuple[np.ndarray, np.ndarray]], ks: list[int]
                        ) -> list[tuple[np.ndarray, np.ndarray]]:
        """``top_k`` through the numba kernel: the batch packed as one array of sorted term ids and weights."""
        n = self.n_docs
        terms, weights, ptr = [], [], [0]
        for ids, w in queries:
            ids, w = _merged(ids, w)
            terms.append(ids)
            weights.append(w)
            ptr.append(ptr[-1] + len(ids))
        q_terms = np.concatenate(terms) if terms else np.zeros(0, np.int64)
        q_w = np.concatenate(weights) if weights else np.zeros(0, np.float32)
        q_ptr = np.asarray(ptr, dtype=np.int64)
        k_arr = np.minimum(np.asarray(ks, dtype=np.int64), n).clip(0)
        k_max = int(k_arr.max(initial=0))
        out_d = np.zeros((len(queries), max(k_max, 1)), np.int64)
        out_s = np.zeros((len(queries), max(k_max, 1)), np.float32)
        out_n = np.zeros(len(queries), np.int64)
        out_p = np.zeros(len(queries), np.int64)
        if n and k_max:
            acc, touched, qw = self._buffers(kernels.workers())
            budget = self.budget
            totals = np.diff(np.concatenate(([0], np.cumsum(self.lengths[q_terms])))[q_ptr])  # postings a query
            if budget is None or int(totals.max(initial=0)) <= budget:  # no query is cut: none of these
                budget, (i_data, i_indices) = np.iinfo(np.int64).max, (self.data, self.indices)
                samples, s_ptr = self.data, self.indptr
                fwd = (self.data, self.indices, np.zeros(1, np.int64))
            else:
                i_data, i_indices = self.impact()
                samples, s_ptr = self.samples(kernels.STRIDE)
                by_doc = self.by_doc()
                fwd = (by_doc.data, by_doc.indices, by_doc.indptr)
            kernels.anytime(self.data, self.indices, i_data, i_indices, samples, s_ptr, self.indptr, budget, *fwd,
                            self.depth, q_ptr, q_terms, q_w, k_arr, acc, touched, qw, out_d, out_s, out_n, out_p)
        self.last_scored = out_p
        return [(out_d[i, :out_n[i]].copy(), out_s[i, :out_n[i]].copy()) for i in range(len(queries))]

    def _buffers(self, workers: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """This thread's per-worker score arrays and dense query weights (the kernel leaves both zeroed) and
        touched-document buffers."""
        local = self._scratch
        if getattr(local, "acc", None) is None or local.acc.shape[0] != workers:
            local.acc = np.zeros((workers, self.n_docs), np.float32)
            local.touched = np.zeros((workers, self.n_docs + 1), np.int32)  # + 1: see the kernel
            local.qw = np.zeros((workers, self.n_terms), np.float32)
        return local.acc, local.touched, local.qw

    def _kept(self, ids: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The postings (positions, contributions) a query over the budget scores, in term order; None when its
        terms hold no more than the budget (every posting is scored)."""
        total = int(self.lengths[ids].sum())
        if self.budget is None or total <= self.budget:
            return None
        pos = np.concatenate([np.arange(self.indptr[t], self.indptr[t + 1]) for t in ids.tolist()])
        contrib = self.data[pos] * np.repeat(w, self.lengths[ids])  # float32, as the kernel multiplies
        # (no impact order needed: the kept postings are the same set, and each document's sum runs in term order)
        cut = np.partition(contrib, total - self.budget - 1)[total - self.budget - 1]  # the (budget+1)-th largest
        keep = contrib > cut  # the smallest float32 cut-off keeping at most ``budget``: just above it
        return pos[keep], contrib[keep]

    def _top_k_numpy(self, queries: list[tuple[np.ndarray, np.ndarray]], ks: list[int]
                     ) -> list[tuple[np.ndarray, np.ndarray]]:
        """``top_k`` with numpy: the document-major matrix times a block of dense query weights; a query over
        the budget adds up its kept postings alone (in term order, as the kernel)."""
        out: list[tuple[np.ndarray, np.ndarray]] = []
        n = self.n_docs
        scored = []
        for start in range(0, len(queries), self.rows_per_product):
            block = queries[start:start + self.rows_per_product]
            block_ks = [max(0, min(k, n)) for k in ks[start:start + len(block)]]
            kept = [self._kept(ids, w) for ids, w in block]
            scores = None
            if any(x is None for x in kept):
                weights = np.zeros((self.n_terms, len(block)), np.float32)
                for j, (ids, w) in enumerate(block):
                    weights[ids, j] = w
                scores = np.asarray(self.by_doc() @ weights)  # documents × queries
            for j, k in enumerate(block_ks):
                part = kept[j]
                if part is None:
                    assert scores is not None
                    scored.append(int(self.lengths[block[j][0]].sum()))
                    docs = np.arange(n)
                    col = scores[:, j]
                else:
                    pos, contrib = part
                    scored.append(len(pos))
                    docs, inv = np.unique(self.indices[pos], return_inverse=True)
                    col = np.zeros(len(docs), np.float32)
                    np.add.at(col, inv.reshape(-1), contrib)  # in order: each document's terms ascending
                if k <= 0 or len(col) == 0:
                    out.append((np.zeros(0, np.int64), np.zeros(0, np.float32)))
                    continue
                best = _best(col, k * self.depth if part is not None and self.depth else k)
                docs, col = docs[best], col[best]
                if part is not None and self.depth:  # the candidates' full scores, from their document rows
                    ids, w = block[j]
                    dense = np.zeros(self.n_terms, np.float32)
                    dense[ids] = w
                    col = np.asarray(self.by_doc()[docs] @ dense, dtype=np.float32)
                    best = _best(col, k)
                    docs, col = docs[best], col[best]
                out.append((docs.astype(np.int64), col))
        self.last_scored = np.asarray(scored, dtype=np.int64)
        return out


def _best(col: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` highest positive scores, best first, ties by position (document order)."""
    m = len(col)
    kth = np.partition(col, m - k)[m - k] if k < m else col.min()
    cand = np.flatnonzero((col >= kth) & (col > 0))  # every document tying with the k-th too
    return cand[np.lexsort((cand, -col[cand]))[:k]]


def _merged(ids: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A query's term ids sorted, with float32 weights (a repeated term's weights added up)."""
    ids = np.asarray(ids, dtype=np.int64)
    w = np.asarray(w, dtype=np.float32)
    if len(ids) > 1 and not bool(np.all(ids[1:] > ids[:-1])):
        uniq, inv = np.unique(ids, return_inverse=True)
        merged = np.zeros(len(uniq), np.float32)
        np.add.at(merged, inv.reshape(-1), w)
        ids, w = uniq, merged
    return ids, w


_KERNELS: list[Any] = []


def _numba_kernels() -> Any:
    """The compiled scoring kernel's module (``esrank.retrieval.bm25_kernels``), or None without numba."""
    if not _KERNELS:
        try:
            from . import bm25_kernels
        except ImportError:
            _KERNELS.append(None)
        else:
            _KERNELS.append(bm25_kernels)
    return _KERNELS[0]
