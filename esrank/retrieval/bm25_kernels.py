"""Compiled (numba) kernels of the embedded index: word splitting and BM25 top-k; imported on first use.

``tokenize`` is the one-pass form of the embedded index's analysis (``Analyzer.corpus_terms``): the same words,
hashes and first uses as the numpy form, without sorting.

``exhaustive`` gives exactly what the numpy scorer gives: term at a time, every posting of the query's terms
(ascending term order) is added into a dense float32 score array, so a document's score is the same float32
sum of ``weight · data`` that the document-major product computes; one sweep of the array then keeps the
``k`` best in a heap (documents scoring 0 left out), best first, ties by document order, and zeroes the array
for the next query. The queries of a batch are spread over the cores (``numba.prange``, one query at a time to
whichever thread is free), each thread with its own score array.

Compiled once per machine (``cache=True``: next to this file, else in the user's cache directory; without a
writable one, in memory at each start, quietly).
"""
from __future__ import annotations

import threading
from typing import Any, Callable

import numba
import numpy as np
from numba import prange

_LAUNCH = threading.Lock()  # one parallel launch at a time (see ``exhaustive``)


def _jit(*, parallel: bool = False) -> Callable[[Callable[..., Any]], Any]:
    """``numba.njit`` cached on disk; without the cache when no cache directory is writable (read-only install)."""
    def wrap(func: Callable[..., Any]) -> Any:
        try:
            return numba.njit(cache=True, parallel=parallel, nogil=True)(func)
        except RuntimeError:  # numba: "cannot cache function ...: no locator available"
            return numba.njit(cache=False, parallel=parallel, nogil=True)(func)
    return wrap


@_jit()
def _worse(s_a: float, d_a: int, s_b: float, d_b: int) -> bool:
    """Whether (score a, document a) ranks below (score b, document b): lower score, or equal and later."""
    return s_a < s_b or (s_a == s_b and d_a > d_b)


@_jit()
def _sift_down(hs: np.ndarray, hd: np.ndarray, size: int, i: int) -> None:
    """Restore the heap (worst at the root) below position ``i``."""
    while True:
        left = 2 * i + 1
        if left >= size:
            return
        w = left
        right = left + 1
        if right < size and _worse(hs[right], hd[right], hs[left], hd[left]):
            w = right
        if _worse(hs[w], hd[w], hs[i], hd[i]):
            hs[i], hs[w] = hs[w], hs[i]
            hd[i], hd[w] = hd[w], hd[i]
            i = w
        else:
            return


@_jit()
def _offer(hs: np.ndarray, hd: np.ndarray, size: int, k: int, s: float, d: int) -> int:
    """Offer (score, document) to a heap of the ``k`` best; returns the new size."""
    if size < k:
        i = size
        hs[i] = s
        hd[i] = d
        while i > 0:  # sift up
            parent = (i - 1) // 2
            if _worse(hs[i], hd[i], hs[parent], hd[parent]):
                hs[i], hs[parent] = hs[parent], hs[i]
                hd[i], hd[parent] = hd[parent], hd[i]
                i = parent
            else:
                break
        return size + 1
    if _worse(hs[0], hd[0], s, d):
        hs[0] = s
        hd[0] = d
        _sift_down(hs, hd, size, 0)
    return size


@_jit()
def _emit(hs: np.ndarray, hd: np.ndarray, size: int, out_d: np.ndarray, out_s: np.ndarray) -> None:
    """Write the heap's entries best first (ties by document order) into ``out_d`` / ``out_s``."""
    by_doc = np.argsort(hd[:size])
    order = by_doc[np.argsort(-hs[:size][by_doc], kind="mergesort")]
    for r in range(size):
        out_d[r] = hd[order[r]]
        out_s[r] = hs[order[r]]


@_jit(parallel=True)
def _exhaustive(data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, n_docs: int,
                q_ptr: np.ndarray, q_terms: np.ndarray, q_w: np.ndarray, ks: np.ndarray,
                acc_all: np.ndarray, out_d: np.ndarray, out_s: np.ndarray, out_n: np.ndarray) -> None:
    """Score every posting of each query's terms, then keep the k best (see the module docstring)."""
    k_max = max(out_d.shape[1], 1)
    for qi in prange(len(ks)):
        acc = acc_all[numba.get_thread_id()]
        hs = np.empty(k_max, np.float32)
        hd = np.empty(k_max, np.int64)
        for j in range(q_ptr[qi], q_ptr[qi + 1]):
            t = q_terms[j]
            w = q_w[j]
            for p in range(indptr[t], indptr[t + 1]):
                acc[indices[p]] += data[p] * w
        k = ks[qi]
        size = 0
        bar = np.float32(0.0) if k > 0 else np.float32(np.inf)  # to enter: above 0, then above the heap's worst
        for d in range(n_docs):
            s = acc[d]
            acc[d] = 0
            if s > bar:  # a later document never beats an equal score
                size = _offer(hs, hd, size, k, s, d)
                if size == k:
                    bar = hs[0]
        _emit(hs, hd, size, out_d[qi], out_s[qi])
        out_n[qi] = size


def exhaustive(data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, n_docs: int,
               q_ptr: np.ndarray, q_terms: np.ndarray, q_w: np.ndarray, ks: np.ndarray,
               acc_all: np.ndarray, out_d: np.ndarray, out_s: np.ndarray, out_n: np.ndarray) -> None:
    """The k best documents of each query into ``out_d``/``out_s`` (``out_n`` of them); ``acc_all`` holds one
    zeroed score array per worker thread. Queries go to whichever worker is free (one at a time), so a core
    slowed by another process holds back one query, not half of the batch. Calls from several Python threads
    run one after the other (each uses every core; numba's workqueue threading layer, the one left when neither
    TBB nor OpenMP is available, aborts the process on concurrent launches)."""
    with _LAUNCH, numba.parallel_chunksize(1):
        _exhaustive(data, indices, indptr, n_docs, q_ptr, q_terms, q_w, ks, acc_all, out_d, out_s, out_n)


@_jit()
def _is_word(c: int, ascii_word: np.ndarray, high_cps: np.ndarray, high_word: np.ndarray) -> bool:
    """Whether code point ``c`` is a word character (a table for ASCII, the chunk's sorted others by search;
    the callers test ASCII inline: a call per character would cost more than the rest of the pass)."""
    if c < 128:
        return bool(ascii_word[c])
    j = np.searchsorted(high_cps, c)
    return bool(j < len(high_cps) and high_cps[j] == c and high_word[j])


@_jit()
def tokenize(cps: np.ndarray, ascii_word: np.ndarray, high_cps: np.ndarray, high_word: np.ndarray,
             doc_starts: np.ndarray, base: np.uint64) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                               np.ndarray]:
    """The words (runs of two or more word characters) of a chunk's code points, in one pass.

    Returns, per word occurrence, its distinct-word number (in order of first use) and its document (by
    ``doc_starts``, the documents' first code points), and per distinct word its first start and end and its
    64-bit hash ``sum(c_i · base^i)`` modulo 2**64 (the hash the numpy analysis computes).
    """
    n = len(cps)
    cap = 1 << 12
    keys = np.zeros(cap, np.uint64)
    vals = np.full(cap, -1, np.int64)
    most = n // 3 + 1  # a word takes at least two characters and a separator
    tok_word = np.empty(most, np.int64)
    tok_doc = np.empty(most, np.int64)
    w_start = np.empty(most, np.int64)
    w_end = np.empty(most, np.int64)
    w_hash = np.empty(most, np.uint64)
    n_tok = 0
    n_words = 0
    doc = 0
    n_docs = len(doc_starts)
    i = 0
    while i < n:
        c = cps[i]
        if not (ascii_word[c] if c < 128 else _is_word(c, ascii_word, high_cps, high_word)):
            i += 1
            continue
        start = i
        h = np.uint64(0)
        mult = np.uint64(1)
        while i < n:
            c = cps[i]
            if not (ascii_word[c] if c < 128 else _is_word(c, ascii_word, high_cps, high_word)):
                break
            h += np.uint64(c) * mult
            mult *= base
            i += 1
        if i - start < 2:
            continue
        while doc + 1 < n_docs and doc_starts[doc + 1] <= start:
            doc += 1
        slot = (h * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)
        mask = np.uint64(cap - 1)
        slot &= mask
        while vals[slot] >= 0 and keys[slot] != h:
            slot = (slot + np.uint64(1)) & mask
        if vals[slot] < 0:
            keys[slot] = h
            vals[slot] = n_words
            w_start[n_words] = start
            w_end[n_words] = i
            w_hash[n_words] = h
            n_words += 1
            if 2 * n_words > cap:  # keep the table at most half full
                cap *= 2
                keys = np.zeros(cap, np.uint64)
                vals = np.full(cap, -1, np.int64)
                mask = np.uint64(cap - 1)
                for w in range(n_words):
                    s2 = ((w_hash[w] * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)) & mask
                    while vals[s2] >= 0:
                        s2 = (s2 + np.uint64(1)) & mask
                    keys[s2] = w_hash[w]
                    vals[s2] = w
            tok_word[n_tok] = n_words - 1
        else:
            tok_word[n_tok] = vals[slot]
        tok_doc[n_tok] = doc
        n_tok += 1
    return tok_word[:n_tok], tok_doc[:n_tok], w_start[:n_words], w_end[:n_words], w_hash[:n_words]


def workers() -> int:
    """How many workers a batch is spread over: numba's thread count (``NUMBA_NUM_THREADS``)."""
    return int(numba.get_num_threads())
