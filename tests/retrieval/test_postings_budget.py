"""The embedded index's postings budget: within it a query's result is the exhaustive one; over it, both scorers
(numba and numpy) give what the specification below gives — the highest contributions scored, the candidates
rescored exactly — and the documents with the highest-impact postings are still found."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from esrank.commands import main
from esrank.corpus import Document
from esrank.errors import ConfigError
from esrank.retrieval import bm25_index
from esrank.retrieval.bm25_index import Analyzer, Scorer, bm25_matrix, impact_order
from esrank.retrieval.embedded import IMPACT, EmbeddedBackend
from esrank.retrieval.factory import BackendOptions, open_backend

Query = tuple[np.ndarray, np.ndarray]
KERNELS = ["numba", "numpy"]


def reference(data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, n_docs: int, queries: list[Query],
              ks: list[int], budget: int | None, depth: int) -> list[Query]:
    """The specification. A query's postings contribute ``float32(weight · data)``; with more than ``budget`` of
    them, only those above the (budget + 1)-th largest contribution are added up (float32, terms ascending), the
    ``depth · k`` best documents by that partial score (ties: document order) get their full score, and the k
    best of those are returned; otherwise the exhaustive top k. Best first, ties by document order."""
    out = []
    for (ids, w), k in zip(queries, ks):
        weight: dict[int, np.float32] = {}
        for t, x in zip(np.asarray(ids).tolist(), np.asarray(w, dtype=np.float32)):
            weight[t] = np.float32(weight.get(t, np.float32(0)) + x)
        full = np.zeros(n_docs, np.float32)
        contributions = []
        for t in sorted(weight):
            rows = indices[indptr[t]:indptr[t + 1]]
            c = data[indptr[t]:indptr[t + 1]] * weight[t]
            full[rows] += c
            contributions.append((rows, c))
        allc = np.concatenate([c for _, c in contributions]) if contributions else np.zeros(0, np.float32)
        if budget is None or len(allc) <= budget:
            docs = np.flatnonzero(full > 0)
            order = np.lexsort((docs, -full[docs]))[:k]
            out.append((docs[order], full[docs[order]]))
            continue
        cut = np.sort(allc)[::-1][budget]
        partial = np.zeros(n_docs, np.float32)
        for rows, c in contributions:
            keep = c > cut
            partial[rows[keep]] += c[keep]
        docs = np.flatnonzero(partial > 0)
        docs = docs[np.lexsort((docs, -partial[docs]))][:k * depth if depth else k]
        scores = full[docs] if depth else partial[docs]
        order = np.lexsort((docs, -scores))[:k]
        out.append((docs[order], scores[order]))
    return out


def assert_same(got: list[Query], expected: list[Query]) -> None:
    assert len(got) == len(expected)
    for i, ((d1, s1), (d2, s2)) in enumerate(zip(got, expected)):
        assert d1.tolist() == d2.tolist(), f"query {i}: documents differ"
        assert s1.tobytes() == np.asarray(s2, np.float32).tobytes(), f"query {i}: scores differ"


def synthetic_index(seed: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Random documents over a Zipfian vocabulary (long and short posting lists), with duplicates (ties)."""
    rng = np.random.default_rng(seed)
    texts = [" ".join(f"w{int(x)}" for x in np.minimum(rng.zipf(1.3, size=int(rng.integers(1, 60))), 300))
             for _ in range(900)]
    texts += texts[:80]  # duplicates tie with their originals
    rng.shuffle(texts)
    an = Analyzer("none", "en")
    terms, doc_of, n = an.corpus_terms(texts)
    data, indices, indptr = bm25_matrix(terms, doc_of, n, len(an.vocab), 1.2, 0.75)
    return data, indices, indptr, n, len(an.vocab)


def synthetic_queries(n_terms: int, seed: int = 8) -> list[Query]:
    rng = np.random.default_rng(seed)
    queries: list[Query] = [(np.zeros(0, np.int64), np.zeros(0, np.int64)),
                            (np.array([5, 2, 5, 0]), np.array([1, 2, 3, 1]))]  # unsorted, a repeated term
    for _ in range(60):
        ids = np.unique(rng.integers(0, n_terms, size=int(rng.integers(1, 80))))
        queries.append((ids, rng.integers(1, 5, size=len(ids))))
    return queries


def test_impact_order_sorts_each_term_by_weight_then_document() -> None:
    data, indices, indptr, _, n_terms = synthetic_index()
    i_data, i_indices = impact_order(data, indices, indptr)
    for t in range(n_terms):
        s, e = indptr[t], indptr[t + 1]
        expected = np.lexsort((indices[s:e], -data[s:e]))
        assert i_data[s:e].tolist() == data[s:e][expected].tolist()
        assert i_indices[s:e].tolist() == indices[s:e][expected].tolist()


@pytest.mark.parametrize("kernel", KERNELS)
def test_within_the_budget_results_are_the_exhaustive_ones(kernel: str) -> None:
    data, indices, indptr, n, n_terms = synthetic_index()
    queries = synthetic_queries(n_terms)
    largest = max(int(np.diff(indptr)[np.unique(ids)].sum()) for ids, _ in queries)
    exhaustive = Scorer(data, indices, indptr, n, kernel=kernel).top_k(queries, [10] * len(queries))
    for budget in (largest, largest + 1, 10 ** 9):
        scorer = Scorer(data, indices, indptr, n, kernel=kernel, budget=budget)
        assert_same(scorer.top_k(queries, [10] * len(queries)), exhaustive)
        assert scorer._impact is None  # nothing was cut: the impact order was never needed
    assert_same(exhaustive, reference(data, indices, indptr, n, queries, [10] * len(queries), None, 0))


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("depth", [0, 1, 4])
def test_over_the_budget_both_scorers_follow_the_specification(kernel: str, depth: int) -> None:
    data, indices, indptr, n, n_terms = synthetic_index()
    queries = synthetic_queries(n_terms)
    totals = np.array([int(np.diff(indptr)[np.unique(ids)].sum()) for ids, _ in queries])
    for budget in (1, 7, 150, int(np.median(totals))):
        scorer = Scorer(data, indices, indptr, n, kernel=kernel, budget=budget, depth=depth)
        for k in (1, 5, 30):
            got = scorer.top_k(queries, [k] * len(queries))
            assert_same(got, reference(data, indices, indptr, n, queries, [k] * len(queries), budget, depth))
            scored = scorer.last_scored  # the postings scored: all of them, or at most the budget
            assert (scored[totals <= budget] == totals[totals <= budget]).all()
            assert (scored[totals > budget] <= budget).all()
    assert (totals > int(np.median(totals))).sum() > 20  # many queries are cut


def test_a_tiny_budget_still_finds_the_documents_with_the_highest_impact_postings(tmp_path: Path) -> None:
    """Two documents hold a rare term (a high BM25 weight); every document holds common ones. With a budget of
    three postings the query scores the rare term's postings first: the two documents come out on top, with
    their exact scores (the candidates are rescored), the shorter one first, and again at every run."""
    filler = [Document(f"f{i:03d}", "", f"common words appear here again {'common ' * (i % 5)}") for i in range(300)]
    rare = [Document("r-long", "", "zygomorphic common words appear here again and again and again"),
            Document("r-short", "", "zygomorphic common words")]
    docs = filler[:150] + rare + filler[150:]
    query = Document("q", "", "zygomorphic common words appear")
    exact = EmbeddedBackend("tiny", tmp_path / "idx", postings_budget=None)
    exact.bulk_add(docs)
    expected = exact.neighbours([query], 2)[0]
    assert [x.id for x in expected] == ["r-short", "r-long"]
    for kernel in KERNELS:
        budgeted = EmbeddedBackend("tiny", tmp_path / "idx", postings_budget=3)
        budgeted.open()
        sc = budgeted._scorer()
        sc.kernel = kernel
        runs = [budgeted.neighbours([query], 2)[0] for _ in range(3)]
        assert 2 <= sc.last_scored[0] <= 3
        assert runs[0] == runs[1] == runs[2] == expected
        sc.depth = 0  # the partial scores alone: the rare term's postings still put the two first
        assert [x.id for x in budgeted.neighbours([query], 2)[0]] == ["r-short", "r-long"]


def test_ties_at_the_cut_go_in_or_out_together_and_documents_keep_their_order() -> None:
    """Identical documents have identical contributions: the cut never separates them, ties stay by document."""
    texts = ["alpha beta", "alpha beta", "gamma", "alpha beta", "alpha", "beta"]
    an = Analyzer("none", "en")
    terms, doc_of, n = an.corpus_terms(texts)
    data, indices, indptr = bm25_matrix(terms, doc_of, n, len(an.vocab), 1.2, 0.75)
    query = [(np.array([an.vocab["alpha"], an.vocab["beta"]]), np.array([1, 1]))]
    for kernel in KERNELS:
        for budget in range(1, 8):
            got = Scorer(data, indices, indptr, n, kernel=kernel, budget=budget, depth=0).top_k(query, [6])
            docs = got[0][0].tolist()
            assert set(docs) & {0, 1, 3} in (set(), {0, 1, 3})  # the three copies: all or none
            assert_same(got, reference(data, indices, indptr, n, query, [6], budget, 0))


def test_the_index_keeps_its_impact_order_and_an_older_index_makes_it_when_needed(tmp_path: Path) -> None:
    docs = [Document(f"d{i}", f"title {i % 7}", " ".join(f"w{(i * j) % 53}" for j in range(1, 30))) for i in range(400)]
    b = EmbeddedBackend("persist", tmp_path / "idx", postings_budget=40)
    b.bulk_add(docs)
    expected = b.neighbours(docs[:30], 10)
    assert all((tmp_path / "idx" / "index" / name).is_file() for name in IMPACT)
    reopened = EmbeddedBackend("persist", tmp_path / "idx", postings_budget=40)
    reopened.open()
    assert reopened._impact is not None and reopened.neighbours(docs[:30], 10) == expected
    for name in IMPACT:  # as written by an esrank before the postings budget
        (tmp_path / "idx" / "index" / name).unlink()
    older = EmbeddedBackend("persist", tmp_path / "idx", postings_budget=40)
    older.open()
    assert older._impact is None and older.neighbours(docs[:30], 10) == expected
    assert (older._scorer().last_scored <= 40).all() and older._scorer()._impact is not None
    for name in IMPACT:  # damaged (not the matrix's length): the index is rebuilt from the log
        np.save(tmp_path / "idx" / "index" / name, np.zeros(3, np.float32))
    damaged = EmbeddedBackend("persist", tmp_path / "idx", postings_budget=40)
    damaged.open()
    assert damaged._impact is not None and damaged.neighbours(docs[:30], 10) == expected


def test_the_budget_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="postings budget"):
        EmbeddedBackend("opt", tmp_path / "x", postings_budget=0)
    backend = open_backend(BackendOptions("opt", path=tmp_path / "o", postings_budget=123), create=True)
    assert isinstance(backend, EmbeddedBackend) and backend.postings_budget == 123
    data = tmp_path / "docs.jsonl"
    data.write_text("".join(json.dumps({"id": f"d{i}", "title": "t", "text": f"graph {i} networks"}) + "\n"
                            for i in range(20)), encoding="utf-8")
    seen: list[int | None] = []
    real = bm25_index.Scorer.__init__

    def spy(self: Scorer, *args: object, **kw: object) -> None:
        seen.append(kw.get("budget"))  # type: ignore[arg-type]
        real(self, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(bm25_index.Scorer, "__init__", spy)
    path = str(tmp_path / "cli")
    assert CliRunner().invoke(main, ["load", str(data), "--index", "cli", "--path", path]).exit_code == 0
    for args, env, budget in ((["--postings-budget", "5"], {}, 5), (["--postings-budget", "0"], {}, None),
                              ([], {"ESRANK_POSTINGS_BUDGET": "9"}, 9)):
        r = CliRunner().invoke(main, ["neighbours", str(data), "--index", "cli", "--path", path, "-k", "2", *args,
                                      "--out", str(tmp_path / "n.jsonl")],
                               env=env)
        assert r.exit_code == 0, r.output
        assert seen[-1] == budget
    r = CliRunner().invoke(main, ["neighbours", str(data), "--index", "cli", "--path", path, "--postings-budget", "-1",
                                  "--out", str(tmp_path / "n.jsonl")])
    assert r.exit_code != 0 and "--postings-budget" in r.output
