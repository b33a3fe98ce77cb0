"""esrank enrich against real Elasticsearch 8 and OpenSearch 2 nodes: content, mapping, dry run, skips, model."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from click.testing import CliRunner

from clusters import BY_ID, SAMPLE, SERVER_KINDS, Cluster, cluster, enrich, get  # noqa: F401 - the fixture is shared
from esrank.commands import main
from esrank.retrieval.cluster import ConnectionConfig, _make_client
from esrank.retrieval.factory import BackendOptions, open_backend
from esrank.text import prmu_class, stemmed_key


def test_enrich_in_place_writes_neighbour_keyphrases(cluster: Cluster) -> None:
    index = cluster.load_sample()
    before = cluster.mapping(index)
    backend = open_backend(BackendOptions.server(index, cluster.url, backend=cluster.kind))
    picked = ["cs-001", "bio-010", "news-020"]
    neighbours = dict(zip(picked, backend.neighbours([BY_ID[i] for i in picked], 5, [{i} for i in picked])))
    backend.close()
    for doc_id, nbs in neighbours.items():
        assert len(nbs) == 5 and doc_id not in {n.id for n in nbs}
    # one batch: every document is ranked before any is written back (in-place updates shift BM25 statistics)
    r = enrich(cluster, "--target-index", index, "--index", index, "--text-fields", "title,text",
               "--method", "vote", "-k", "5", "--top-n", "6", "--batch-size", "100")
    assert r.exit_code == 0, r.output
    assert "seen 90, enriched 90 (0 with no keyphrase), skipped 0" in r.output
    docs = cluster.docs(index)
    assert len(docs) == 90
    now = datetime.now(timezone.utc)
    all_phrases = {stemmed_key(k) for d in SAMPLE for k in d.keyphrases}
    for doc_id, hit in docs.items():
        value = hit["_source"]["esrank"]
        gold = BY_ID[doc_id]
        assert value["model"] == "vote" and value["version"].startswith("0.")
        assert now - timedelta(minutes=10) < datetime.fromisoformat(value["enriched_at"].replace("Z", "+00:00")) <= now
        kps = value["keyphrases"]
        assert 1 <= len(kps) <= 6
        scores = [k["score"] for k in kps]
        assert scores == sorted(scores, reverse=True) and all(s > 0 for s in scores)
        for k in kps:  # every phrase is a training keyphrase, categorised against this document's own text
            assert stemmed_key(k["phrase"]) in all_phrases
            assert k["category"] == prmu_class(k["phrase"], gold.title, gold.text)
        assert value["absent"] == [k["phrase"] for k in kps if k["category"] != "P"]
        # the document is excluded from its own neighbours: keyphrases only it carries never come back
        unique = {stemmed_key(p) for p in gold.keyphrases
                  if sum(stemmed_key(p) in {stemmed_key(x) for x in d.keyphrases} for d in SAMPLE) == 1}
        assert not unique & {stemmed_key(k["phrase"]) for k in kps}
        # the user's fields are untouched
        assert hit["_source"]["title"] == gold.title and hit["_source"]["keyphrases"] == gold.keyphrases
    # the vote score of a phrase is the summed BM25 score of the (k=5) neighbours carrying it, self excluded
    for doc_id, nbs in neighbours.items():
        votes: dict[str, float] = {}
        for n in nbs:
            for key in {stemmed_key(p) for p in n.keyphrases}:
                votes[key] = votes.get(key, 0.0) + n.score
        kps = docs[doc_id]["_source"]["esrank"]["keyphrases"]
        for k in kps:
            assert k["score"] == pytest.approx(votes[stemmed_key(k["phrase"])], rel=1e-5)
        kept = {stemmed_key(k["phrase"]) for k in kps}
        assert all(v <= kps[-1]["score"] + 1e-4 for key, v in votes.items() if key not in kept)
    # the mapping only grew by the one field, whose text sub-field uses the index's own analyzer
    after = cluster.mapping(index)
    assert {k: v for k, v in after["properties"].items() if k != "esrank"} == before["properties"]
    assert {k: v for k, v in after.items() if k != "properties"} == {k: v for k, v in before.items()
                                                                      if k != "properties"}
    phrase = after["properties"]["esrank"]["properties"]["keyphrases"]["properties"]["phrase"]
    assert phrase["type"] == "keyword" and phrase["fields"]["text"]["analyzer"] == "esrank_text"
    # a second run is idempotent: everything is skipped, nothing written
    r = enrich(cluster, "--target-index", index, "--index", index, "--text-fields", "title,text",
               "--method", "vote", "-k", "5", "--top-n", "6")
    assert r.exit_code == 0, r.output
    assert "seen 90, enriched 0 (0 with no keyphrase), skipped 90 (90 already enriched" in r.output
    assert {i: h["_version"] for i, h in cluster.docs(index).items()} == {i: h["_version"] for i, h in docs.items()}


def test_user_index_filters_skips_and_strict_mapping(cluster: Cluster) -> None:
    training = cluster.load_sample()
    target = cluster.name("papers")
    mapping = {"dynamic": "strict", "properties": {
        "title": {"type": "text"}, "abstract": {"type": "text", "analyzer": "simple"},
        "domain": {"type": "keyword"}, "views": {"type": "integer"}}}
    cluster.client.indices.create(index=target, body={"mappings": mapping})
    chosen = [d for d in SAMPLE if d.id.startswith("bio-")][:8]
    for d in chosen:
        cluster.client.index(index=target, id=d.id, body={"title": d.title, "abstract": d.text,
                                                          "domain": "biomedical", "views": 3})
    cluster.client.index(index=target, id="empty", body={"domain": "biomedical", "views": 1})
    cluster.client.index(index=target, id="other", body={"title": "Stock markets", "domain": "news"})
    cluster.client.indices.refresh(index=target)
    before = cluster.mapping(target)
    r = enrich(cluster, "--target-index", target, "--index", training, "--text-fields", "title,abstract",
               "--method", "vote", "--exclude-self", "--only-absent", "--min-score", "2.5", "--top-n", "4",
               "--query", '{"term": {"domain": "biomedical"}}', "--field", "kp_auto")
    assert r.exit_code == 0, r.output
    assert "seen 9, enriched 8" in r.output and "1 missing the text fields" in r.output
    docs = cluster.docs(target)
    assert "kp_auto" not in docs["empty"]["_source"] and "kp_auto" not in docs["other"]["_source"]
    for d in chosen:
        src = docs[d.id]["_source"]
        assert src["views"] == 3 and src["abstract"] == d.text
        kps = src["kp_auto"]["keyphrases"]
        assert len(kps) <= 4
        assert all(k["category"] in ("R", "M", "U") and k["score"] >= 2.5 for k in kps)
        assert not {stemmed_key(k["phrase"]) for k in kps} & {stemmed_key(p) for p in d.keyphrases
                                                              if sum(stemmed_key(p) in map(stemmed_key, x.keyphrases)
                                                                     for x in SAMPLE) == 1}
    after = cluster.mapping(target)
    assert {k: v for k, v in after["properties"].items() if k != "kp_auto"} == before["properties"]
    assert after["dynamic"] == "strict"
    text = after["properties"]["kp_auto"]["properties"]["absent"]["fields"]["text"]
    assert "analyzer" not in text  # title has no analyzer of its own: both use the index default


def test_dry_run_writes_nothing_and_prints_samples(cluster: Cluster) -> None:
    index = cluster.load_sample()
    before_docs, before_map = cluster.docs(index), cluster.mapping(index)
    r = CliRunner().invoke(main, [
        "enrich", "--url", cluster.url, "--no-carbon", "--target-index", index, "--index", index,
        "--text-fields", "title,text", "--method", "vote", "--dry-run", "--samples", "2"])
    assert r.exit_code == 0, r.output + r.stderr
    samples = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(samples) == 2 and all(1 <= len(s["esrank"]["keyphrases"]) <= 10 for s in samples)
    assert "dry run: seen 90, would enrich 90" in r.stderr
    after = cluster.docs(index)
    assert {i: (h["_seq_no"], h["_version"]) for i, h in after.items()} == \
        {i: (h["_seq_no"], h["_version"]) for i, h in before_docs.items()}
    assert cluster.mapping(index) == before_map


def test_bad_options_end_in_one_line(cluster: Cluster) -> None:
    index = cluster.load_sample()
    r = enrich(cluster, "--target-index", index, "--index", index, "--method", "vote", "--query", "{nope")
    assert r.exit_code != 0 and "esrank: error: --query is not valid JSON" in r.output
    r = enrich(cluster, "--target-index", index, "--index", index, "--method", "vote", "--field", "keyphrases",
               "--text-fields", "title,text")
    assert r.exit_code != 0 and "already has a field 'keyphrases'" in r.output
    r = enrich(cluster, "--target-index", index, "--index", index, "--slice-id", "2", "--slice-max", "2")
    assert r.exit_code != 0 and "--slice-id must be between 0 and" in r.output


@pytest.mark.parametrize("kind", [pytest.param("elasticsearch", marks=pytest.mark.server)])
def test_enrich_with_minilm(kind: str, request: pytest.FixtureRequest) -> None:
    server = request.getfixturevalue("es_server")
    client = _make_client(ConnectionConfig(server.url), kind)
    c = Cluster(kind, server.url, client, [])
    try:
        index = c.load_sample()
        ids = ["cs-001", "bio-001", "news-001"]
        r = enrich(c, "--target-index", index, "--index", index, "--text-fields", "title,text", "--threads", "1",
                   "--device", "cpu", "--query", json.dumps({"ids": {"values": ids}}), "--top-n", "5")
        assert r.exit_code == 0, r.output
        assert "seen 3, enriched 3" in r.output
        docs = c.docs(index)
        for i in ids:
            value = docs[i]["_source"]["esrank"]
            assert value["model"] == "all-MiniLM-L6-v2"
            scores = [k["score"] for k in value["keyphrases"]]
            assert len(scores) == 5 and scores == sorted(scores, reverse=True)
            assert all(-1.0 <= s <= 1.0 for s in scores)  # cosine similarities
        assert sum("esrank" in h["_source"] for h in docs.values()) == 3
    finally:
        for index in c.made:
            client.indices.delete(index=index)
        client.close()


def test_documents_from_stored_sources() -> None:
    from esrank.enrich.job import text_of, to_document
    from esrank.enrich.scan import Hit

    src = {"title": " A title ", "meta": {"abstract": ["first part", "", "second part"]}, "n": 3}
    assert text_of(src, "meta.abstract") == "first part\nsecond part"
    assert text_of(src, "n") == "" and text_of(src, "meta.missing") == "" and text_of(src, "title.x") == ""
    doc = to_document(Hit("i", "d1", 0, 1, src), ("title", "meta.abstract", "body"))
    assert doc is not None and (doc.id, doc.title, doc.text) == ("d1", "A title", "first part\nsecond part")
    only = to_document(Hit("i", "d2", 0, 1, {"body": "text"}), ("body",))
    assert only is not None and (only.title, only.text) == ("", "text")
    assert to_document(Hit("i", "d3", 0, 1, {"title": "  ", "other": "x"}), ("title", "abstract")) is None


def test_keyphrase_selection_and_payload() -> None:
    from esrank.enrich.job import EnrichSettings, payload, select
    from esrank.predictions import Prediction, ScoredPhrase

    pred = Prediction("d", [ScoredPhrase("a", 0.9, "P"), ScoredPhrase("b", 0.8, "U"), ScoredPhrase("c", 0.5, "R"),
                            ScoredPhrase("d", 0.2, "M")])
    assert [k.phrase for k in select(pred, 10, None, False)] == ["a", "b", "c", "d"]
    assert [k.phrase for k in select(pred, 2, None, False)] == ["a", "b"]
    assert [k.phrase for k in select(pred, 10, 0.5, False)] == ["a", "b", "c"]
    assert [k.phrase for k in select(pred, 2, None, True)] == ["b", "c"]  # absent first, then cut to top-n
    value = payload(pred, EnrichSettings("t", top_n=3), "vote", "v1")
    assert value["keyphrases"] == [{"phrase": "a", "score": 0.9, "category": "P"},
                                   {"phrase": "b", "score": 0.8, "category": "U"},
                                   {"phrase": "c", "score": 0.5, "category": "R"}]
    assert value["absent"] == ["b", "c"] and (value["model"], value["version"]) == ("vote", "v1")
    assert value["enriched_at"].endswith("Z")


@pytest.mark.parametrize("change, message", [
    ({"text_fields": ()}, "--text-fields needs"), ({"field": "_x"}, "invalid --field"), ({"field": "a.b"}, "top-level field"),
    ({"field": "title"}, "is one of the --text-fields"), ({"slice_id": 2, "slice_max": 2}, "--slice-id must be"),
    ({"top_n": 0}, "at least 1"), ({"rate": 0.0}, "--rate must be positive")])
def test_impossible_settings(change: dict[str, Any], message: str) -> None:
    from esrank.enrich.job import EnrichSettings
    from esrank.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        EnrichSettings("t", **change).validate()  # type: ignore[arg-type]


def test_enrichment_version_follows_what_changes_the_output() -> None:
    from esrank.enrich.job import EnrichSettings, enrichment_version

    v = enrichment_version(EnrichSettings("t"), "m", "fp", "kp")
    assert v == enrichment_version(EnrichSettings("t", batch_size=7, slices=3), "m", "fp", "kp")
    assert v != enrichment_version(EnrichSettings("t", top_n=5), "m", "fp", "kp")
    assert v != enrichment_version(EnrichSettings("t"), "m", "fp2", "kp")
    assert v != enrichment_version(EnrichSettings("t"), "m", "fp", "kp2")
    assert enrichment_version(EnrichSettings("t", version="2024-06"), "m", "fp", "kp") == "2024-06"
