"""The embedded bm25s index on disk: persistence, interrupted loads, torn writes, analysis, options."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from esrank.corpus import Document
from esrank.errors import BackendError, ConfigError
from esrank.retrieval.bm25_index import Analyzer, Scorer, bm25_matrix
from esrank.retrieval.embedded import EmbeddedBackend, default_index_path
from esrank.retrieval.factory import BackendOptions, open_backend, resolve_kind
from esrank.retrieval.loading import load_corpus
from esrank.retrieval.mappings import bm25_parameters, load_mapping
from esrank.retrieval.query import bm25_idf, query_text, top_terms

DOCS = [Document("a", "Neural networks", "Deep neural networks classify images.", ["neural networks"]),
        Document("b", "Graph networks", "Graph neural networks for molecules.", ["graph neural networks"]),
        Document("c", "Cats", "The cat sat on the mat.", ["cats"])]


def test_analysis_and_matrix_by_hand() -> None:
    an = Analyzer("porter", "en")
    assert an.term_ids("The Networks, networking and a NETWORK!").tolist() == [0, 0, 0]  # stem 'network'; stops gone
    assert an.vocab == {"network": 0}
    terms, doc_of, n = an.corpus_terms(["apple apple banana", "banana cherry"])
    assert (terms.tolist(), doc_of.tolist(), n) == ([1, 1, 2, 2, 3], [0, 0, 0, 1, 1], 2)
    data, indices, indptr = bm25_matrix(terms, doc_of, n, len(an.vocab), 1.5, 0.75)
    # apple: df=1, tf=2, dl=3, avgdl=2.5 → idf ln(1+1.5/1.5)=ln 2; norm 1.5*(0.25+0.75*1.2)=1.725
    assert indptr.tolist() == [0, 0, 1, 3, 4]
    assert data[0] == pytest.approx(math.log(2) * 2 / (2 + 1.725), rel=1e-6)
    # banana: df=2 → idf ln(1 + 0.5/2.5); doc 1: tf 1, dl 2 → norm 1.5*(0.25+0.6)=1.275
    assert data[2] == pytest.approx(math.log(1.2) * 1 / (1 + 1.275), rel=1e-6)
    assert indices.tolist() == [0, 0, 1, 1]


def test_query_is_analysed_terms_with_frequencies(tmp_path: Path) -> None:
    b = EmbeddedBackend("kp", tmp_path / "kp", max_query_terms=2)
    b.create()
    b.bulk_add(DOCS)
    assert query_text(Document("q", "T", "x")) == "T\nx" and query_text(Document("q", "", "x")) == "x"
    names = b._analyzer.term_names()  # type: ignore[union-attr]
    q = Document("q", "The C++ way: AND/OR", "title:(x) networks networks network -cat zebra")
    ids, tf = b.query(q)  # unknown words (way, title, zebra), stop words and 1-letter words go
    assert {names[i]: int(f) for i, f in zip(ids, tf)} == {"network": 3, "cat": 1}
    b.max_query_terms = 1  # network: 3 · idf(df 2) = 3 · 0.47 = 1.41 > cat: 1 · idf(df 1) = 0.98
    ids, tf = b.query(q)
    assert {names[i]: int(f) for i, f in zip(ids, tf)} == {"network": 3}
    b.max_query_terms = 1  # with two uses of 'cat' it wins: 2 · 0.98 > 1 · 0.47
    ids, tf = b.query(Document("q", "cat cats", "network"))
    assert {names[i]: int(f) for i, f in zip(ids, tf)} == {"cat": 2}


def test_top_terms_by_tf_idf_then_term() -> None:
    tf = np.array([1, 5, 1, 1])
    idf = np.array([2.0, 0.5, 2.0, 2.0])
    assert top_terms(["d", "a", "c", "b"], tf, idf, 10).tolist() == [0, 1, 2, 3]  # within the bound: all
    assert top_terms(["d", "a", "c", "b"], tf, idf, 2).tolist() == [1, 3]  # a (2.5), then b wins the 2.0 tie
    assert bm25_idf(3, 1) == pytest.approx(math.log(1 + 2.5 / 1.5))


def test_persisted_and_reopened(tmp_path: Path) -> None:
    b = EmbeddedBackend("kp", tmp_path / "kp")
    b.create()
    b.bulk_add(DOCS)
    first = b.neighbours(DOCS, 2, [{d.id} for d in DOCS])
    reopened = EmbeddedBackend("kp", tmp_path / "kp")
    reopened.open()
    assert reopened.count() == 3 and reopened.neighbours(DOCS, 2, [{d.id} for d in DOCS]) == first
    assert [n.id for n in first[0]] == ["b"] and first[2] == []
    manifest = json.loads((tmp_path / "kp" / "manifest.json").read_text())
    assert (manifest["documents"], manifest["k1"], manifest["b"]) == (3, 1.5, 0.75)


def test_interrupted_load_is_rebuilt_and_resumed(tmp_path: Path) -> None:
    path = tmp_path / "kp"
    b = EmbeddedBackend("kp", path)
    b.create()
    b.bulk_add(DOCS[:1])
    # a load that died after writing its log but before rebuilding, with a torn last line
    with open(path / "documents.jsonl", "a") as fh:
        fh.write(json.dumps({"id": "b", "title": DOCS[1].title, "text": DOCS[1].text, "keyphrases": []}) + "\n")
        fh.write('{"id": "c", "title": "Ca')
    again = EmbeddedBackend("kp", path)
    again.open()  # rebuilds from the log, drops the torn line
    assert again.count() == 2 and again.ids_present(["a", "b", "c"]) == {"a", "b"}
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"id": d.id, "title": d.title, "abstract": d.text,
                                        "keyphrases": d.keyphrases}) + "\n" for d in DOCS))
    report = load_corpus(again, data, resume=True, batch_size=2)
    assert (report.already_present, report.indexed, report.created, report.count_after) == (2, 1, 1, 3)
    assert report.balanced


def test_corrupt_log_in_the_middle_is_an_error(tmp_path: Path) -> None:
    b = EmbeddedBackend("kp", tmp_path / "kp")
    b.create()
    b.bulk_add(DOCS)
    log = tmp_path / "kp" / "documents.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    log.write_text(lines[0] + "garbage\n" + "".join(lines[1:]))
    with pytest.raises(BackendError, match="corrupt document log"):
        EmbeddedBackend("kp", tmp_path / "kp").open()


def test_options_and_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESRANK_DATA_DIR", str(tmp_path / "data"))
    assert default_index_path("kp") == tmp_path / "data" / "indexes" / "kp"
    assert resolve_kind(BackendOptions("kp")) == "embedded"
    with pytest.raises(ConfigError, match="needs --url"):
        resolve_kind(BackendOptions("kp", backend="opensearch"))
    with pytest.raises(ConfigError, match="does not take --url"):
        resolve_kind(BackendOptions.server("kp", "http://x:1", backend="embedded"))
    with pytest.raises(BackendError, match="no embedded index 'nope'"):
        open_backend(BackendOptions("nope"))
    with pytest.raises(ConfigError, match="invalid index name"):
        EmbeddedBackend("../x")


def test_mappings_are_read_from_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert bm25_parameters() == (1.5, 0.75)
    main = load_mapping("documents")
    assert main["settings"]["analysis"]["analyzer"]["esrank_text"] == {"type": "english"}
    assert "_comment" not in main and main["mappings"]["properties"]["keyphrases"]["type"] == "keyword"
    assert load_mapping("documents.standard")["settings"]["analysis"]["analyzer"]["esrank_text"]["type"] == "standard"
    monkeypatch.setenv("ESRANK_MAPPINGS_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match="mapping file not found"):
        load_mapping("documents")
    (tmp_path / "documents.json").write_text('{"settings": ')
    with pytest.raises(ConfigError, match="invalid JSON"):
        load_mapping("documents")
    monkeypatch.setenv("ESRANK_MAPPINGS_DIR", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="not a directory"):
        load_mapping("documents")


def test_replacing_a_document_compacts_the_log(tmp_path: Path) -> None:
    b = EmbeddedBackend("kp", tmp_path / "kp")
    b.create()
    b.bulk_add(DOCS)
    r = b.bulk_add([Document("a", "Quantum", "tunnelling", ["quantum"])])
    assert (r.indexed, r.created, b.count()) == (1, 0, 3)
    lines = (tmp_path / "kp" / "documents.jsonl").read_text().splitlines()
    assert [json.loads(x)["id"] for x in lines] == ["b", "c", "a"]
    (res,) = b.neighbours([Document("q", "quantum", "")], 3)
    assert [(n.id, n.keyphrases) for n in res] == [("a", ("quantum",))]
    assert np.isfinite(res[0].score) and res[0].score > 0


def test_top_k_equals_scoring_every_document() -> None:
    rng = np.random.default_rng(7)
    n_docs, n_terms = 3000, 400
    an = Analyzer("none", "en")
    # Zipf-like documents: a few terms in most documents (what pruning skips), many rare ones
    texts = [" ".join(f"t{int(x)}" for x in np.minimum(rng.zipf(1.3, size=int(rng.integers(5, 80))), n_terms))
             for _ in range(n_docs)]
    terms, doc_of, n = an.corpus_terms(texts)
    data, indices, indptr = bm25_matrix(terms, doc_of, n, len(an.vocab), 1.5, 0.75)
    scorer = Scorer(data, indices, indptr, n)
    dense = np.zeros((len(an.vocab), n))
    for t in range(len(an.vocab)):
        dense[t, indices[indptr[t]:indptr[t + 1]]] = data[indptr[t]:indptr[t + 1]]
    queries = []
    for _ in range(60):
        ids = np.unique(rng.integers(0, len(an.vocab), size=int(rng.integers(1, 60))))
        queries.append((ids, rng.integers(1, 6, size=len(ids))))
    for k in (1, 5, 20):
        for (ids, w), (docs, scores) in zip(queries, scorer.top_k(queries, [k] * len(queries))):
            full = (dense[ids] * w[:, None]).sum(axis=0)
            expect = np.lexsort((np.arange(n), -full))[:k]
            expect = expect[full[expect] > 0]
            assert np.allclose(scores, full[expect], rtol=1e-5)  # the same k best scores
            assert np.allclose(full[docs], scores, rtol=1e-5)  # each returned score is the document's score


def test_vectorised_corpus_analysis_equals_the_regex_tokenizer() -> None:
    texts = ["Ünïcödé ÉCOLE naïve café—coffee “quoted” 日本語テキスト x_y __ a1 ß İstanbul ﬁne 2.5kg",
             "", "a b c", "The networks' NETWORKING, networked: net-work!", "tabs\tand\nnewlines\r\nhere"]
    texts += [f"doc {i} shares words with doc {i - 1} and zebra{i % 3}" for i in range(50)]
    fast = Analyzer("porter", "en")
    terms, doc_of, n = fast.corpus_terms(texts, chunk=7)  # several chunks, so the vocabulary carries over
    slow = Analyzer("porter", "en")
    expected = [[slow.term_names()[i] for i in slow.term_ids(t).tolist()] for t in texts]
    got: list[list[str]] = [[] for _ in texts]
    for t, d in zip(terms.tolist(), doc_of.tolist()):
        got[d].append(fast.term_names()[t])
    assert n == len(texts) and got == expected
    assert got[0][:3] == ["ünïcödé", "école", "naïv"] and "x_y" in got[0] and "__" in got[0]
