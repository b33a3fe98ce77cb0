"""Compiled (numba) kernels of the embedded index: word splitting and BM25 top-k; imported on first use.

``tokenize`` is the one-pass form of the embedded index's analysis (``Analyzer.corpus_terms``): the same words,
hashes and first uses as the numpy form, without sorting.

``anytime`` is BM25 top-k with a postings budget (anytime, score-at-a-time ranking over impact-ordered
postings): a query scores, of its terms' postings, only those whose contribution ``float32(weight · data)``
reaches a cut-off ``tau`` chosen so that at most ``budget`` postings are scored — the highest contributions;
all of them when the query's terms hold ``budget`` postings or fewer, and then the result is the exhaustive
one. The postings come twice: by term in document order, and in impact order (each term's by decreasing
weight, ties by document), where each term's kept postings are a prefix of its list, found by bisection on
``tau``. A term keeping most of its list is read in document order instead, its postings below ``tau``
skipped (the same postings; the score array is then visited in memory order, which is faster). Term at a
time in ascending term order, they are added into a float32 score array, so a document's score is the float32
sum of ``weight · data`` over the terms, as the document-major product computes it. When the scored postings
are fewer than half the documents, the documents touched are listed as they are first met and only they are
offered to the heap (and zeroed for the next query); otherwise one sweep of the score array does it (it then
costs no more than the postings). A query that was cut keeps its ``depth · k`` best documents by these
partial scores and rescores them from their document rows (the same float32 sum over all its terms), then
keeps the ``k`` best. Best first, ties by document order. A cut query costs O(budget + depth · k · document
length), whatever the collection's size. The queries of a batch are spread over the cores (``numba.prange``,
one query at a time to whichever thread is free), each thread with its own score array.

Compiled once per machine (``cache=True``: next to this file, else in the user's cache directory; without a
writable one, in memory at each start, quietly).
"""
from __future__ import annotations

import threading
from typing import Any, Callable

import numba
import numpy as np
from numba import prange

_LAUNCH = threading.Lock()  # one parallel launch at a time (see ``anytime``)


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
    """Write the heap's entries best first (ties by document order) into ``out_d`` / ``out_s`` (as many as fit)."""
    by_doc = np.argsort(hd[:size])
    order = by_doc[np.argsort(-hs[:size][by_doc], kind="mergesort")]
    for r in range(min(size, len(out_d))):
        out_d[r] = hd[order[r]]
        out_s[r] = hs[order[r]]


@_jit()
def _bits_float(bits: np.ndarray, floats: np.ndarray, b: int) -> np.float32:
    """The float32 whose bit pattern is ``b`` (``bits`` and ``floats``: one int32 seen both ways)."""
    bits[0] = b
    return floats[0]


STRIDE = 64  # the impact-ordered postings are sampled every STRIDE positions of each term (``samples``)


@_jit()
def _first_under(values: np.ndarray, offset: int, lo: int, hi: int, w: float, tau: float) -> int:
    """The first m in [lo, hi) whose ``values[offset + m] · w`` is below ``tau`` (hi if none), by bisection: the
    values are in non-increasing order there."""
    while lo < hi:
        m = (lo + hi) // 2
        if values[offset + m] * w >= tau:
            lo = m + 1
        else:
            hi = m
    return lo


@_jit()
def _first_below(data: np.ndarray, samples: np.ndarray, start: int, s_start: int, a: int, b: int, w: float,
                 tau: float) -> int:
    """The first position in [a, b) of a term's impact-ordered postings (from ``start``; its samples from
    ``s_start``) whose contribution ``data · w`` is below ``tau`` (b if none): first among the term's samples,
    which are few and stay in cache, then within one stride of the postings."""
    m_first = (a + STRIDE - 1) // STRIDE  # the samples at positions in [a, b)
    m = _first_under(samples, s_start, m_first, (b + STRIDE - 1) // STRIDE, w, tau)
    if m > m_first:  # the sample before is still at or above tau
        a = max(a, (m - 1) * STRIDE + 1)
    b = min(b, m * STRIDE)  # the sample at m (if any) is below tau
    return _first_under(data, start, a, b, w, tau)


@_jit()
def _cutoff(data: np.ndarray, samples: np.ndarray, s_ptr: np.ndarray, indptr: np.ndarray, terms: np.ndarray,
            ws: np.ndarray, budget: int, counts: np.ndarray, upper: np.ndarray, trial: np.ndarray) -> float:
    """How many leading (highest-impact) postings of each query term to score: every posting whose contribution
    ``float32(data · weight)`` reaches the smallest float32 cut-off ``tau`` that keeps at most ``budget`` of them
    (all of them when the terms hold ``budget`` postings or fewer). Written into ``counts``; returns ``tau``
    (0 when nothing is cut).

    ``tau`` is found by bisection on its bit pattern (positive float32 values order as their bits); each term's
    count is bracketed by the counts at the two ends of the interval, so a step searches only that bracket, and
    a bracket wider than a stride is first narrowed on the term's samples (``_first_below``)."""
    n = len(terms)
    total = 0
    for j in range(n):
        counts[j] = indptr[terms[j] + 1] - indptr[terms[j]]
        total += counts[j]
    if total <= budget:
        return np.float32(0.0)
    top = np.float32(0.0)
    for j in range(n):
        if counts[j] > 0:
            c = data[indptr[terms[j]]] * ws[j]
            if c > top:
                top = c
    # invariant: count(tau at lo) > budget (``upper`` holds those counts), count(tau at hi) <= budget (``counts``)
    one = np.zeros(1, np.int32)
    as_float = one.view(np.float32)
    one[0] = 0
    as_float[0] = top
    lo = 0
    hi = int(one[0]) + 1
    for j in range(n):
        upper[j] = counts[j]
        counts[j] = 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        tau = _bits_float(one, as_float, mid)
        kept = 0
        done = n
        for j in range(n):
            a = counts[j]
            b = upper[j]
            if a < b:
                t = terms[j]
                start = indptr[t]
                w = ws[j]
                if data[start + a] * w < tau:  # the whole bracket is below tau
                    pass
                elif data[start + b - 1] * w >= tau:  # the whole bracket is at or above it
                    a = b
                else:
                    a = _first_below(data, samples, start, s_ptr[t], a, b, w, tau)
            trial[j] = a
            kept += a
            if kept > budget:
                done = j + 1
                break
        if kept <= budget:
            hi = mid
            for j in range(n):
                counts[j] = trial[j]
        else:
            lo = mid
            for j in range(done):
                upper[j] = trial[j]
    return _bits_float(one, as_float, hi)


@_jit(parallel=True)
def _anytime(data: np.ndarray, indices: np.ndarray, i_data: np.ndarray, i_indices: np.ndarray,
             samples: np.ndarray, s_ptr: np.ndarray, indptr: np.ndarray, budget: int,
             f_data: np.ndarray, f_terms: np.ndarray, f_indptr: np.ndarray, depth: int,
             q_ptr: np.ndarray, q_terms: np.ndarray, q_w: np.ndarray, ks: np.ndarray,
             acc_all: np.ndarray, touched_all: np.ndarray, qw_all: np.ndarray, out_d: np.ndarray,
             out_s: np.ndarray, out_n: np.ndarray, out_p: np.ndarray) -> None:
    """Score each query's leading postings within the budget, then keep the k best (see the module docstring)."""
    k_max = max(out_d.shape[1], 1) * max(depth, 1)
    for qi in prange(len(ks)):
        thread = numba.get_thread_id()
        acc = acc_all[thread]
        touched = touched_all[thread]
        n_docs = len(acc)
        hs = np.empty(k_max, np.float32)
        hd = np.empty(k_max, np.int64)
        s0 = q_ptr[qi]
        n_terms = q_ptr[qi + 1] - s0
        counts = np.empty(n_terms, np.int64)
        upper = np.empty(n_terms, np.int64)
        trial = np.empty(n_terms, np.int64)
        tau = _cutoff(i_data, samples, s_ptr, indptr, q_terms[s0:s0 + n_terms], q_w[s0:s0 + n_terms], budget,
                      counts, upper, trial)
        scored = 0
        total = 0
        for j in range(n_terms):
            scored += counts[j]
            total += indptr[q_terms[s0 + j] + 1] - indptr[q_terms[s0 + j]]
        rescore = scored < total and depth > 0  # a cut query: its candidates get their exact scores
        k = ks[qi] * depth if rescore else ks[qi]
        size = 0
        if 2 * scored >= n_docs:  # dense: then a sweep of the score array costs no more than the postings
            for j in range(n_terms):  # ascending term order: a document's score is the same float32 sum
                w = q_w[s0 + j]
                t = q_terms[s0 + j]
                start = indptr[t]
                length = indptr[t + 1] - start
                if 2 * counts[j] >= length:  # most of the list: read in document order (memory in order)
                    for p in range(start, start + length):
                        c = data[p] * w
                        acc[indices[p]] += c if c >= tau else np.float32(0.0)  # + 0 leaves a score as it is
                else:  # the kept prefix of the impact-ordered list
                    for p in range(start, start + counts[j]):
                        acc[i_indices[p]] += i_data[p] * w
            bar = np.float32(0.0) if k > 0 else np.float32(np.inf)  # to enter: above 0, then above the worst
            for d in range(n_docs):
                s = acc[d]
                acc[d] = 0
                if s > bar:  # documents in order: a later one never beats an equal score
                    size = _offer(hs, hd, size, k, s, d)
                    if size == k:
                        bar = hs[0]
        else:  # sparse: list the documents as they are first met, and visit only them
            n_touched = 0
            for j in range(n_terms):
                w = q_w[s0 + j]
                t = q_terms[s0 + j]
                start = indptr[t]
                length = indptr[t + 1] - start
                if 2 * counts[j] >= length:  # most of the list: read in document order
                    for p in range(start, start + length):
                        c = data[p] * w
                        if c >= tau:
                            d = indices[p]
                            touched[n_touched] = d  # kept (the count moves on) only at a document's first posting
                            n_touched += acc[d] == 0  # branch-free: whether a posting is a first one is unpredictable
                            acc[d] += c
                else:  # the kept prefix of the impact-ordered list
                    for p in range(start, start + counts[j]):
                        d = i_indices[p]
                        touched[n_touched] = d
                        n_touched += acc[d] == 0
                        acc[d] += i_data[p] * w
            for i in range(n_touched):
                d = touched[i]
                s = acc[d]
                acc[d] = 0
                if k > 0 and (size < k or s > hs[0] or (s == hs[0] and d < hd[0])):
                    size = _offer(hs, hd, size, k, s, d)
        if rescore and size:  # each candidate's full score from its document row (terms ascending, as above)
            hd[:size].sort()  # rows in memory order (their partial scores are not needed any more)
            qw = qw_all[thread]
            for j in range(n_terms):
                qw[q_terms[s0 + j]] = q_w[s0 + j]
            for i in range(size):
                d = hd[i]
                s = np.float32(0.0)
                for p in range(f_indptr[d], f_indptr[d + 1]):
                    s += f_data[p] * qw[f_terms[p]]  # + 0 for the document's other terms: no change, no branch
                hs[i] = s
            for j in range(n_terms):
                qw[q_terms[s0 + j]] = 0
        _emit(hs, hd, size, out_d[qi], out_s[qi])
        out_n[qi] = min(size, ks[qi])
        out_p[qi] = scored


def anytime(data: np.ndarray, indices: np.ndarray, i_data: np.ndarray, i_indices: np.ndarray,
            samples: np.ndarray, s_ptr: np.ndarray, indptr: np.ndarray, budget: int,
            f_data: np.ndarray, f_terms: np.ndarray, f_indptr: np.ndarray, depth: int,
            q_ptr: np.ndarray, q_terms: np.ndarray, q_w: np.ndarray, ks: np.ndarray,
            acc_all: np.ndarray, touched_all: np.ndarray, qw_all: np.ndarray, out_d: np.ndarray,
            out_s: np.ndarray, out_n: np.ndarray, out_p: np.ndarray) -> None:
    """The k best documents of each query into ``out_d``/``out_s`` (``out_n`` of them; ``out_p``: the postings
    scored), at most ``budget`` postings a query.

    ``data``/``indices``/``indptr``: the postings by term in document order; ``i_data``/``i_indices`` the same
    in impact order (``impact_order``; read only for the terms a query over the budget cuts), sampled every
    ``STRIDE`` postings of a term into ``samples`` (term t's from ``s_ptr[t]``); ``f_data``/``f_terms``/
    ``f_indptr``: the document-major matrix (terms ascending), from which a cut query's ``depth · k`` best
    candidates are rescored (``depth`` 0: not rescored). The queries: terms ``q_terms[q_ptr[i]:q_ptr[i + 1]]``
    ascending, weights ``q_w``, ``ks[i]`` results each. ``acc_all`` holds one zeroed score array per worker
    thread, ``qw_all`` one zeroed dense query-weight array (both left zeroed), ``touched_all`` one buffer of
    ``n_docs + 1`` documents. Queries go to whichever worker is free (one at a time), so a core slowed by
    another process holds back one query, not half of the batch. Calls from several Python threads run one
    after the other (each uses every core; numba's workqueue threading layer, the one left when neither TBB nor
    OpenMP is available, aborts the process on concurrent launches)."""
    with _LAUNCH, numba.parallel_chunksize(1):
        _anytime(data, indices, i_data, i_indices, samples, s_ptr, indptr, budget, f_data, f_terms, f_indptr, depth,
                 q_ptr, q_terms, q_w, ks, acc_all, touched_all, qw_all, out_d, out_s, out_n, out_p)


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
