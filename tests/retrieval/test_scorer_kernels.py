"""The embedded index's scorers: the compiled (numba) kernel and the numpy fallback give the same neighbours and
the same float32 scores as a plain float32 sum over the query terms in ascending order (ties by document order)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from esrank.corpus import Document, read_documents
from esrank.retrieval import bm25_index
from esrank.retrieval.bm25_index import Analyzer, Scorer, bm25_matrix
from esrank.retrieval.embedded import EmbeddedBackend

numba = pytest.importorskip("numba")

SAMPLE = Path(bm25_index.__file__).resolve().parent.parent / "data" / "sample.jsonl"
Query = tuple[np.ndarray, np.ndarray]


def reference_top_k(data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, n_docs: int,
                    queries: list[Query], ks: list[int]) -> list[Query]:
    """The specification: float32 sums of weight · data in ascending term order; best first, ties by document."""
    out = []
    for (ids, w), k in zip(queries, ks):
        weight: dict[int, np.float32] = {}
        for t, x in zip(np.asarray(ids).tolist(), np.asarray(w, dtype=np.float32)):
            weight[t] = np.float32(weight.get(t, np.float32(0)) + x)  # a repeated term adds up
        acc = np.zeros(n_docs, np.float32)
        for t in sorted(weight):
            rows = indices[indptr[t]:indptr[t + 1]]
            acc[rows] += data[indptr[t]:indptr[t + 1]] * weight[t]
        docs = np.flatnonzero(acc > 0)
        order = np.lexsort((docs, -acc[docs]))[:max(k, 0)]
        out.append((docs[order], acc[docs[order]]))
    return out


def assert_same(got: list[Query], expected: list[Query]) -> None:
    assert len(got) == len(expected)
    for i, ((d1, s1), (d2, s2)) in enumerate(zip(got, expected)):
        assert d1.tolist() == d2.tolist(), f"query {i}: documents differ"
        assert s1.dtype == np.float32 and s1.tobytes() == np.asarray(s2, np.float32).tobytes(), f"query {i}: scores"


def synthetic_index(seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Random documents from a small vocabulary, with exact duplicates (tied scores) and an empty document."""
    rng = np.random.default_rng(seed)
    texts = [" ".join(f"w{int(x)}" for x in np.minimum(rng.zipf(1.4, size=int(rng.integers(1, 40))), 150))
             for _ in range(700)]
    texts += texts[:60] + ["", "w1 w1", "w1 w1"]  # duplicates tie with their originals
    rng.shuffle(texts)
    an = Analyzer("none", "en")
    terms, doc_of, n = an.corpus_terms(texts)
    data, indices, indptr = bm25_matrix(terms, doc_of, n, len(an.vocab), 1.2, 0.75)
    return data, indices, indptr, n, len(an.vocab)


def synthetic_queries(n_terms: int, seed: int = 4) -> list[Query]:
    rng = np.random.default_rng(seed)
    queries: list[Query] = [(np.zeros(0, np.int64), np.zeros(0, np.int64))]  # empty query
    queries.append((np.array([5, 2, 5, 0]), np.array([1, 2, 3, 1])))  # unsorted, a repeated term
    queries.append((np.array([n_terms - 1]), np.array([1])))  # one rare term: fewer matches than k
    for _ in range(80):
        ids = np.unique(rng.integers(0, n_terms, size=int(rng.integers(1, 30))))
        queries.append((ids, rng.integers(1, 4, size=len(ids))))
    return queries


@pytest.mark.parametrize("kernel", ["numba", "numpy"])
def test_scorers_equal_the_specification_on_a_synthetic_index(kernel: str) -> None:
    data, indices, indptr, n, n_terms = synthetic_index()
    scorer = Scorer(data, indices, indptr, n, kernel=kernel)
    queries = synthetic_queries(n_terms)
    for k in (0, 1, 3, 10, n + 5):  # k beyond the number of documents (and of matching documents)
        ks = [k] * len(queries)
        assert_same(scorer.top_k(queries, ks), reference_top_k(data, indices, indptr, n, queries, ks))
    mixed = [int(x) for x in np.random.default_rng(5).integers(0, 40, size=len(queries))]
    got = scorer.top_k(queries, mixed)
    assert_same(got, reference_top_k(data, indices, indptr, n, queries, mixed))
    assert got[0][0].size == 0 and got[2][0].size < 40  # empty query; a rare term matches few documents
    ties = sum(int(np.sum(s[1:] == s[:-1])) for _, s in got)
    assert ties > 20  # the duplicates do tie, so the document-order rule is exercised


def test_numba_and_numpy_agree_on_the_sample_corpus_neighbours(tmp_path: Path) -> None:
    docs = list(read_documents(SAMPLE))
    backend = EmbeddedBackend("sample", tmp_path / "idx")
    backend.create()
    backend.bulk_add(docs + [Document("copy-" + d.id, d.title, d.text) for d in docs[:10]])  # ties
    exclude = [{d.id} if i % 2 else {d.id, "copy-" + d.id} for i, d in enumerate(docs)]
    found = {}
    for kernel in ("numba", "numpy"):
        sc = backend._retriever.scores
        backend._scorer_cache = Scorer(sc["data"], sc["indices"], sc["indptr"], int(sc["num_docs"]), kernel=kernel)
        found[kernel] = (backend.neighbours(docs, 8, exclude), backend.neighbours(docs, 500),
                         backend._scorer_cache.top_k(backend.queries(docs), [5] * len(docs)))
    assert found["numba"][:2] == found["numpy"][:2]
    assert_same(found["numba"][2], found["numpy"][2])
    with_excluded, everything, _ = found["numba"]
    assert all(len(n) == 8 and not {x.id for x in n} & ex for n, ex in zip(with_excluded, exclude))
    assert all(len(n) <= len(docs) + 10 for n in everything)  # k = 500 > documents: every match, no more
    assert [n.id for n in everything[0][:2]] == ["cs-001", "copy-cs-001"]  # a tie: the earlier document first
    queries = backend.queries(docs)
    data, indices, indptr = (backend._retriever.scores[x] for x in ("data", "indices", "indptr"))
    assert_same(backend._scorer_cache.top_k(queries, [7] * len(docs)),
                reference_top_k(data, indices, indptr, len(docs) + 10, queries, [7] * len(docs)))


def test_without_numba_the_numpy_scorer_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    data, indices, indptr, n, n_terms = synthetic_index()
    queries = synthetic_queries(n_terms)
    monkeypatch.setattr(bm25_index, "_KERNELS", [None])  # as if numba were not installed
    got = Scorer(data, indices, indptr, n).top_k(queries, [6] * len(queries))
    assert_same(got, reference_top_k(data, indices, indptr, n, queries, [6] * len(queries)))
    with pytest.raises(RuntimeError, match="needs numba"):
        Scorer(data, indices, indptr, n, kernel="numba").top_k(queries, [6] * len(queries))


def test_numba_is_imported_only_when_an_index_scores() -> None:
    code = ("import sys, esrank, esrank.commands, esrank.retrieval\n"
            "assert 'numba' not in sys.modules and 'bm25s' not in sys.modules\n"
            "import esrank.retrieval.embedded\n"
            "assert 'esrank.retrieval.bm25_kernels' not in sys.modules\n"
            "from esrank.retrieval.bm25_index import _numba_kernels\n"
            "assert _numba_kernels() is not None and 'esrank.retrieval.bm25_kernels' in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


def test_a_read_only_install_compiles_without_a_cache_and_without_warnings(tmp_path: Path) -> None:
    """No writable cache directory (next to the module, in the user's cache): the kernel compiles in memory,
    quietly. (A file stands where each cache directory would go, so this holds for root too.)"""
    src = Path(bm25_index.__file__).resolve().parent / "bm25_kernels.py"
    pkg = tmp_path / "ro"
    pkg.mkdir()
    shutil.copy(src, pkg / "bm25_kernels.py")
    (pkg / "__pycache__").write_text("not a directory")
    (tmp_path / "home").write_text("not a directory")
    code = ("import numpy as np, bm25_kernels as k\n"
            "acc, seen = np.zeros((k.workers(), 3), np.float32), np.zeros((k.workers(), 4), np.int32)\n"
            "qw = np.zeros((k.workers(), 1), np.float32)\n"
            "for budget, docs in ((10, [2, 0]), (1, [2])):  # the second cuts: one posting, rescored\n"
            "    d, s, n, p = (np.zeros((1, 2), np.int64), np.zeros((1, 2), np.float32), np.zeros(1, np.int64),\n"
            "                  np.zeros(1, np.int64))\n"
            "    k.anytime(np.array([1., 2.], np.float32), np.array([0, 2], np.int32), np.array([2., 1.], np.float32),\n"
            "              np.array([2, 0], np.int32), np.array([2.], np.float32), np.array([0, 1]),\n"
            "              np.array([0, 2]), budget, np.array([1., 2.], np.float32),\n"
            "              np.array([0, 0], np.int32), np.array([0, 1, 1, 2]), 4, np.array([0, 1]), np.array([0]),\n"
            "              np.array([1.], np.float32), np.array([2]), acc, seen, qw, d, s, n, p)\n"
            "    assert d[0, :n[0]].tolist() == docs and p.tolist() == [min(budget, 2)], (d, n, p)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(HOME=str(tmp_path / "home" / "user"), XDG_CACHE_HOME=str(tmp_path / "home" / "cache"),
               PYTHONPATH=str(pkg), PYTHONDONTWRITEBYTECODE="1")
    pkg.chmod(0o555)
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path)
    pkg.chmod(0o755)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert sorted(p.name for p in pkg.iterdir()) == ["__pycache__", "bm25_kernels.py"]


def test_compiled_and_numpy_analysis_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    """The one-pass tokenizer gives the numpy analysis' words, term ids (by first use) and documents."""
    texts = ["Ünïcödé ÉCOLE naïve café—coffee “quoted” 日本語テキスト x_y __ a1 ß İstanbul ﬁne 2.5kg", "", "a", "ab",
             "The networks' NETWORKING, networked: net-work!", "tabs\tand\nnewlines\r\nhere ٣٤ ½ ²"]
    texts += [f"{d.title} {d.text}" for d in read_documents(SAMPLE)]
    queries = texts[::7] + ["unknown-word zzzz networks", "", "the and of"]
    got = {}
    for mode in ("numba", "numpy"):
        monkeypatch.setattr(bm25_index, "_KERNELS", [None] if mode == "numpy" else [])
        an = Analyzer("english", "en")
        terms, doc_of, n = an.corpus_terms(texts, chunk=11)  # several chunks: the vocabulary carries over
        got[mode] = (terms.tolist(), doc_of.tolist(), n, dict(an.vocab), an.queries_term_counts(queries),
                     an.queries_term_counts(queries))  # twice: the second time from the analyser's caches
    (t1, d1, n1, v1, q1, r1), (t2, d2, n2, v2, q2, r2) = got["numba"], got["numpy"]
    assert (t1, d1, n1, v1) == (t2, d2, n2, v2) and len(t1) > 1000
    assert "networkzzz" not in v1 and "zzzz" not in v1
    for a, b in zip(q1 + r1, q2 + r2):
        assert a[0].tolist() == b[0].tolist() and a[1].tolist() == b[1].tolist()
    slow = Analyzer("english", "en", vocab=v1)  # the regular-expression analysis, query by query
    assert [q[0].tolist() for q in q1] == [slow.query_term_counts(t)[0].tolist() for t in queries]
    assert [q[1].tolist() for q in q1] == [slow.query_term_counts(t)[1].tolist() for t in queries]


def test_a_load_writes_json_lines_and_its_rebuild_equals_one_from_the_log(tmp_path: Path) -> None:
    """The log and rows.jsonl are plain ``json.dumps`` lines; the rebuild after a load (appended records kept in
    memory) gives the index a rebuild from the log alone gives."""
    docs = [Document(f"d{i}", f"Tïtle \"{i}\"\n", f"graph networks {'neural ' * (i % 4)}text\u2028{i} 😀",
                     [f"kp {i}", "a\\b", "é"]) for i in range(40)]
    path = tmp_path / "idx"
    b = EmbeddedBackend("log", path)
    b.bulk_add(docs[:25], batch_size=7)
    b.bulk_add(docs[20:35] + [Document("d3", "Replaced", "graph neural text")], batch_size=6)  # re-added ids
    b.bulk_add(docs[35:], batch_size=2)  # new ids only: no compaction
    lines = (path / "documents.jsonl").read_text(encoding="utf-8").split("\n")[:-1]  # not splitlines: U+2028
    records = [json.loads(line) for line in lines]
    assert lines == [json.dumps(r, ensure_ascii=False) for r in records] and len(records) == 40  # compacted
    assert [r["id"] for r in records][-7:] == ["d34", "d3", "d35", "d36", "d37", "d38", "d39"]  # last version's place
    assert {r["id"]: r["title"] for r in records}["d3"] == "Replaced" and b.count() == 40
    rows = (path / "index" / "rows.jsonl").read_text(encoding="utf-8").split("\n")[:-1]
    assert rows == [json.dumps([r["id"], r["keyphrases"]], ensure_ascii=False) for r in records]
    found = b.neighbours(docs, 5, [{d.id} for d in docs])
    (path / "manifest.json").unlink()  # the next open rebuilds from the log alone
    again = EmbeddedBackend("log", path)
    again.open()
    assert again.neighbours(docs, 5, [{d.id} for d in docs]) == found and found[0]
    assert (path / "index" / "rows.jsonl").read_text(encoding="utf-8").split("\n")[:-1] == rows


def test_concurrent_queries_from_threads_are_safe_on_every_threading_layer(tmp_path: Path) -> None:
    """Threads (a server's workers) may query one index at once: numba's workqueue layer, which aborts the process
    on concurrent parallel launches, is forced here."""
    code = ("import threading, numpy as np\n"
            "from esrank.retrieval.bm25_index import Analyzer, Scorer, bm25_matrix\n"
            "import numba\n"
            "rng = np.random.default_rng(1)\n"
            "texts = [' '.join(f'w{int(x)}' for x in rng.integers(0, 300, size=30)) for _ in range(3000)]\n"
            "an = Analyzer('none', 'en')\n"
            "terms, doc_of, n = an.corpus_terms(texts)\n"
            "scorer = Scorer(*bm25_matrix(terms, doc_of, n, len(an.vocab), 1.2, 0.75), n)\n"
            "queries = an.queries_term_counts(texts[:64])\n"
            "ref = [d.tolist() for d, _ in scorer.top_k(queries, [10] * 64)]\n"
            "assert numba.threading_layer() == 'workqueue'\n"
            "bad = []\n"
            "def work():\n"
            "    for _ in range(20):\n"
            "        if [d.tolist() for d, _ in scorer.top_k(queries, [10] * 64)] != ref:\n"
            "            bad.append(1)\n"
            "threads = [threading.Thread(target=work) for _ in range(4)]\n"
            "for t in threads: t.start()\n"
            "for t in threads: t.join()\n"
            "assert not bad\n")
    env = dict(os.environ, NUMBA_THREADING_LAYER="workqueue")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       cwd=Path(__file__).resolve().parents[2])
    assert r.returncode == 0, r.stderr[-2000:]
