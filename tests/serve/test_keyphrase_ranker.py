"""esrank.KeyphraseRanker: the Python API over the one ranking path, with the real MiniLM and an embedded index."""
from __future__ import annotations

import pytest

import esrank
from esrank.errors import ConfigError, InputError
from esrank.ranking.pipeline import RankSettings, rank_documents
from esrank.ranking.ranker import Ranker
from esrank.retrieval.factory import BackendOptions, open_backend


@pytest.fixture(scope="module")
def ranker(index_path):
    with esrank.KeyphraseRanker.open(index="kp", path=index_path, k=5, top_n=5, threads=1,
                                     precision="fp32") as r:
        yield r


def test_predict_string_dict_and_many(ranker, sample_split):
    doc = sample_split[1][0]
    from_string = ranker.predict(f"{doc.title}. {doc.text}")
    from_dict = ranker.predict({"title": doc.title, "text": doc.text})
    assert 1 <= len(from_dict) <= 5
    assert all(isinstance(k, esrank.ScoredPhrase) for k in from_dict)
    assert [k.score for k in from_dict] == sorted((k.score for k in from_dict), reverse=True)
    assert {k.category for k in from_dict} <= {"P", "R", "M", "U"}
    assert from_string and from_string[0].phrase  # one string: same text, title folded into it
    many = ranker.predict_many([{"title": d.title, "abstract": d.text} for d in sample_split[1][:3]])
    assert len(many) == 3 and many[0] == from_dict


def test_same_as_the_ranking_path(ranker, sample_split, index_path):
    """predict_many equals rank_documents + Ranker + open_backend called directly (one ranking path)."""
    test = sample_split[1]
    direct_ranker = Ranker.load(None, threads=1, precision="fp32")
    backend = open_backend(BackendOptions(index="kp", path=index_path))
    try:
        expected = list(rank_documents(test, backend, direct_ranker, RankSettings(k=5, top_n=5)))
    finally:
        backend.close()
        direct_ranker.close()
    got = ranker.rank_all(test)
    assert [p.id for p in got] == [d.id for d in test]
    for g, e in zip(got, expected):
        assert g.phrases == e.phrases
        assert [k.category for k in g.keyphrases] == [k.category for k in e.keyphrases]
        assert [k.score for k in g.keyphrases] == pytest.approx([k.score for k in e.keyphrases], abs=1e-5)


def test_vote_method_loads_no_model_and_closes(index_path, sample_split):
    r = esrank.KeyphraseRanker.open(index="kp", path=index_path, method="vote", k=3)
    assert r.ranker is None and r.info()["method"] == "vote" and r.info()["model"] is None
    kps = r.predict(sample_split[1][1])
    assert kps and all(k.score is not None and k.score > 0 for k in kps)
    r.close()
    r.close()  # idempotent
    with pytest.raises(ConfigError):
        r.predict("a closed ranker")


def test_bad_inputs_and_options(ranker, index_path):
    with pytest.raises(InputError):
        ranker.predict("   ")
    with pytest.raises(InputError):
        ranker.predict({"title": "", "text": ""})
    with pytest.raises(InputError):
        ranker.predict(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        esrank.KeyphraseRanker.open(index="kp", path=index_path, method="nonsense")
    with pytest.raises(ConfigError):
        esrank.KeyphraseRanker.open(index="kp", path=index_path, method="vote", k=0)


def test_info(ranker):
    info = ranker.info()
    assert info["index"] == "kp" and info["backend"] == "embedded" and info["k"] == 5
    assert info["method"] == "mix" and info["version"] == esrank.__version__  # the ranking default
    assert info["model"] == "all-MiniLM-L6-v2"


@pytest.mark.server
@pytest.mark.parametrize("server", ["es_server", "os_server"])
def test_open_an_index_on_a_server(server, request, sample_split):
    """url=...: the same API on an index of a real Elasticsearch / OpenSearch node (method vote: no model)."""
    import uuid

    url = request.getfixturevalue(server).url
    name = f"kp-api-{uuid.uuid4().hex[:8]}"
    loader = open_backend(BackendOptions.server(name, url), create=True)
    try:
        loader.bulk_add(sample_split[0])
        with esrank.KeyphraseRanker.open(index=name, url=url, method="vote", k=5, top_n=5) as r:
            assert r.info()["backend"] in ("elasticsearch", "opensearch")
            preds = r.predict_many([{"title": d.title, "text": d.text} for d in sample_split[1][:3]])
            assert len(preds) == 3 and all(1 <= len(p) <= 5 for p in preds)
    finally:
        loader.cluster.delete_index(name)  # type: ignore[attr-defined]
        loader.close()
