"""One behavioural suite for every backend: embedded bm25s, Elasticsearch 8 and OpenSearch 2 (real servers)."""
from __future__ import annotations

import math

import pytest

from esrank.corpus import Document, read_documents, sample_corpus_path
from esrank.ranking.candidates import pool_from_neighbours
from esrank.ranking.pools import neighbour_batches
from esrank.retrieval import Backend
from esrank.retrieval.factory import open_backend

FRUIT = [Document("1", "apple banana", ""), Document("2", "apple cherry", ""), Document("3", "date elder", "")]


def _idf(n_docs: int, df: int) -> float:
    return math.log(1 + (n_docs - df + 0.5) / (df + 0.5))


@pytest.fixture
def fruit(backend_options) -> Backend:  # type: ignore[no-untyped-def]
    backend = open_backend(backend_options("fruit"), create=True)
    backend.bulk_add(FRUIT)
    yield backend
    backend.close()


def test_bm25_scores_match_the_formula(fruit: Backend) -> None:
    # Lucene BM25, k1=1.5, b=0.75; all documents have 2 terms so the length norm is 1:
    # score = idf * (k1 + 1) * tf / (tf + k1) = idf * 2.5 / 2.5 = idf.
    (only,), (first, second) = fruit.neighbours([Document("q", "banana", ""), Document("q2", "apple banana", "")], 3)
    assert only.id == "1" and only.rank == 1
    assert only.score == pytest.approx(_idf(3, 1), rel=1e-4)  # ln(1 + 2.5/1.5) = 0.98083
    assert (first.id, second.id) == ("1", "2")
    assert first.score == pytest.approx(_idf(3, 1) + _idf(3, 2), rel=1e-4)  # 0.98083 + 0.47000
    assert second.score == pytest.approx(_idf(3, 2), rel=1e-4)
    assert fruit.count() == 3


def test_exclude_ids_and_k(fruit: Backend) -> None:
    q = Document("1", "apple banana", "")
    (res,) = fruit.neighbours([q], k=5, exclude_ids=[{"1"}])
    assert [n.id for n in res] == ["2"] and res[0].rank == 1
    (res,) = fruit.neighbours([q], k=1)
    assert [n.id for n in res] == ["1"]
    empty, = fruit.neighbours([Document("x", "zebra", "")], k=5)  # no shared term: no neighbours
    assert empty == []


def test_reload_never_duplicates_and_ids_present(fruit: Backend) -> None:
    again = fruit.bulk_add([Document("1", "apple banana split", "", ["dessert"]), FRUIT[1]])
    assert (again.indexed, again.created, again.failed) == (2, 0, [])
    assert fruit.count() == 3
    assert fruit.ids_present(["1", "3", "nope"]) == {"1", "3"}
    (res,) = fruit.neighbours([Document("q", "split", "")], k=2)  # the replaced version is the one indexed
    assert [(n.id, n.keyphrases) for n in res] == [("1", ("dessert",))]


def test_query_syntax_is_harmless_and_long_documents_are_bounded(backend_options) -> None:  # type: ignore[no-untyped-def]
    backend = open_backend(backend_options("syntax", max_query_terms=1), create=True)
    backend.bulk_add([Document("a", "quantum tunnelling", "barrier"), Document("b", "ocean tides", "moon")])
    nasty = Document("q", 'title:(quantum OR "tides) AND {x TO y] \\ / ~2 ^3 * ? -moon +[', '{"query": 1}')
    backend.max_query_terms = 50  # type: ignore[attr-defined]
    (res,) = backend.neighbours([nasty], k=2)
    assert {n.id for n in res} == {"a", "b"}  # the words still match, the syntax did nothing
    backend.max_query_terms = 1  # type: ignore[attr-defined]
    # every indexed term has the same idf here, so tf·idf picks the most frequent term, ties the smaller term
    (res,) = backend.neighbours([Document("q", "ocean moon", "moon moon barrier")], k=2)
    assert [n.id for n in res] == ["b"]  # moon (tf 3) kept; barrier (tf 1) over the bound
    (res,) = backend.neighbours([Document("q", "ocean quantum", "barrier")], k=2)
    assert [n.id for n in res] == ["a"]  # a three-way tie on tf·idf: 'barrier' sorts first
    words = " ".join(f"w{i:05d}" for i in range(5000))  # 5000 distinct words the index does not know
    (res,) = backend.neighbours([Document("long", "", words + " barrier")], k=2)  # not counted against the bound
    assert [n.id for n in res] == ["a"]
    backend.close()


def test_a_repeated_word_weighs_by_its_frequency(backend_options) -> None:  # type: ignore[no-untyped-def]
    backend = open_backend(backend_options("tf"), create=True)
    backend.bulk_add([Document("x", "graph", "theory"), Document("y", "ocean", "theory"),
                      Document("z", "other", "thing")])
    (once,) = backend.neighbours([Document("q", "graph ocean", "")], k=2)
    assert once[0].score == pytest.approx(once[1].score, rel=1e-5)  # one occurrence each: a tie
    (five,) = backend.neighbours([Document("q", "graph ocean ocean", "ocean ocean ocean")], k=2)
    assert [n.id for n in five] == ["y", "x"]
    assert five[0].score == pytest.approx(5 * five[1].score, rel=1e-5)  # 'ocean' counts five times
    backend.close()


def test_long_documents_keep_their_highest_tf_idf_terms(backend_options) -> None:  # type: ignore[no-untyped-def]
    backend = open_backend(backend_options("tfidf", max_query_terms=2), create=True)
    common = [Document(f"c{i}", "common", f"filler{i}") for i in range(8)]  # 'common' in 9 of 10 documents: low idf
    backend.bulk_add(common + [Document("r", "rare", "common"), Document("s", "scarce", "unusual")])
    # tf: common 4, rare 1, scarce 1, unusual 1 → tf·idf: common 4·0.15, the others 1·1.85: rare + scarce kept
    query = Document("q", "common common common common", "unusual scarce rare")
    (res,) = backend.neighbours([query], k=3)
    assert sorted(n.id for n in res) == ["r", "s"]  # 'common' was dropped (no c* document), 'unusual' lost the tie
    backend.max_query_terms = 4  # type: ignore[attr-defined]
    (res,) = backend.neighbours([query], k=3)
    assert [n.id for n in res][:2] == ["s", "r"] and res[2].id.startswith("c")
    backend.close()


def test_stemming_where_the_analyzer_has_it(backend_options) -> None:  # type: ignore[no-untyped-def]
    backend = open_backend(backend_options("stem"), create=True)
    backend.bulk_add([Document("a", "neural network", "")])
    (res,) = backend.neighbours([Document("q", "networks", "")], k=1)
    stems = getattr(backend, "mapping_name", "embedded") != "documents.standard"
    assert [n.id for n in res] == (["a"] if stems else [])
    backend.close()


def test_sample_corpus_pools(backend_options) -> None:  # type: ignore[no-untyped-def]
    docs = list(read_documents(sample_corpus_path()))
    backend = open_backend(backend_options("sample"), create=True)
    result = backend.bulk_add(docs, batch_size=32)
    assert (result.indexed, result.created, backend.count()) == (len(docs), len(docs), len(docs))
    same_domain = 0
    for doc, nbs in neighbour_batches(backend, docs, k=5, batch_size=16):
        assert len(nbs) == 5 and doc.id not in {n.id for n in nbs}
        assert [n.rank for n in nbs] == [1, 2, 3, 4, 5]
        assert all(a.score >= b.score for a, b in zip(nbs, nbs[1:]))
        same_domain += nbs[0].id.split("-")[0] == doc.id.split("-")[0]
        pool = pool_from_neighbours(doc.id, nbs)
        keys = [c.key for c in pool.candidates]
        assert len(keys) == len(set(keys)) and pool.candidates
        for c in pool.candidates:  # every candidate is a keyphrase of the neighbours it names
            for rank, score in zip(c.neighbour_ranks, c.bm25_scores):
                assert score == nbs[rank - 1].score
    assert same_domain >= 0.9 * len(docs)  # cs / bio / news: the nearest document shares the domain
    backend.close()


def test_iter_documents_returns_every_stored_document(backend_options) -> None:  # type: ignore[no-untyped-def]
    backend = open_backend(backend_options("iter"), create=True)
    try:
        docs = [Document(f"d{i:03d}", f"title {i}", f"text {i}", [f"kp {i}", "shared"]) for i in range(25)]
        backend.bulk_add(docs)
        backend.bulk_add([Document("d003", "new title", "new text", ["replaced"])])
        got = {d.id: d for d in backend.iter_documents(batch_size=10)}  # three pages on the servers
        assert len(got) == 25
        assert got["d003"] == Document("d003", "new title", "new text", ["replaced"])
        assert got["d010"] == docs[10]
    finally:
        backend.close()


def test_keyphrase_frequencies_count_documents_per_stemmed_keyphrase(backend_options) -> None:  # type: ignore[no-untyped-def]
    from esrank.retrieval.base import count_keyphrases
    from esrank.text import stemmed_key

    backend = open_backend(backend_options("freq"), create=True)
    try:
        docs = [Document(f"f{i:05d}", f"title {i}", "text", [f"kp {i}", "Neural Networks", "shared"])
                for i in range(10_050)]  # over 10,000 distinct phrases: two pages of the servers' aggregation
        # two spellings of one stemmed key in one document: the embedded index counts the document once; the
        # servers aggregate exact phrases, so they count it once per spelling (documented in docs/ranking.md)
        docs[0].keyphrases.append("neural network")
        backend.bulk_add(docs, batch_size=2000)
        freq = backend.keyphrase_frequencies()
        assert freq.documents == 10_050
        twice = 0 if backend_options.kind == "embedded" else 1
        assert freq.get(stemmed_key("neural networks")) == 10_050 + twice
        assert freq.get(stemmed_key("shared")) == 10_050
        assert freq.get(stemmed_key("kp 17")) == 1 and freq.get("absent phrase") == 0
        if not twice:
            assert freq == count_keyphrases(d.keyphrases for d in docs)
        backend.bulk_add([Document("f00001", "new", "text", ["replaced"])])  # writing resets the counts
        again = backend.keyphrase_frequencies()
        assert again.get(stemmed_key("replaced")) == 1 and again.get(stemmed_key("kp 1")) == 0
        assert again.get(stemmed_key("shared")) == 10_049
    finally:
        backend.close()
