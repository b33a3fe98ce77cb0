"""Retrieval evaluation: metrics against hand-computed values, TREC file reading, and the project's test
collection on real Elasticsearch 8 / OpenSearch 2 nodes before and after enrichment."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from clusters import Cluster, cluster, enrich  # noqa: F401 - the fixture is shared
from esrank.commands import main
from esrank.errors import InputError
from esrank.evaluation.retrieval import (average_precision, compare, ndcg, read_qrels, read_topics, recall, score_run,
                                         write_runs)

DATA = Path(__file__).resolve().parents[2] / "esrank" / "data" / "retrieval"


def test_average_precision_by_hand() -> None:
    # relevant: a, b, c (3); found a at rank 1 (P=1/1) and b at rank 3 (P=2/3); c never: AP = (1 + 2/3) / 3
    assert average_precision(["a", "x", "b", "y"], {"a": 1, "b": 2, "c": 1, "z": 0}) == pytest.approx(0.555556, 1e-5)
    assert average_precision(["x"], {"a": 0}) == 0.0


def test_ndcg_by_hand() -> None:
    # DCG = 0 + 2/log2(3) + 1/log2(4) = 1.261860 + 0.5; ideal = 2/log2(2) + 1/log2(3) = 2 + 0.630930
    assert ndcg(["x", "b", "a"], {"a": 1, "b": 2}) == pytest.approx(1.761860 / 2.630930, 1e-5)
    assert ndcg(["b", "a"], {"a": 1, "b": 2}) == pytest.approx(1.0)
    assert ndcg(["a", "b"], {"a": 1, "b": 2}, k=1) == pytest.approx(0.5)  # gain 1 where 2 was possible


def test_recall_by_hand() -> None:
    assert recall(["x", "a", "b"], {"a": 1, "b": 1, "c": 0}, k=2) == 0.5
    assert recall(["x", "a", "b"], {"a": 1, "b": 1}, k=3) == 1.0


def test_score_run_leaves_out_topics_without_relevant_documents() -> None:
    scores = score_run({"q1": ["a"], "q2": ["b"]}, {"q1": {"a": 2}, "q2": {"b": 0}, "q3": {"c": 1}})
    assert sorted(scores) == ["q1", "q3"]
    assert scores["q1"] == {"map": 1.0, "ndcg@10": 1.0, "recall@100": 1.0}
    assert scores["q3"] == {"map": 0.0, "ndcg@10": 0.0, "recall@100": 0.0}  # nothing retrieved


def test_paired_test_of_runs() -> None:
    base = {f"q{i}": {"map": 0.2, "ndcg@10": 0.3, "recall@100": 0.5} for i in range(8)}
    better = {q: {m: v + 0.1 for m, v in row.items()} for q, row in base.items()}
    tests = compare({"original": base, "same": dict(base), "better": better}, "original", rounds=2000)
    by = {(t.b, t.metric): t for t in tests}
    assert by[("same", "map")].p_randomization == 1.0
    # all 8 differences +0.1: only the all-positive and all-negative sign patterns reach it, p = 2/256
    assert by[("better", "map")].p_randomization == pytest.approx(2 / 256, abs=0.01)
    assert by[("better", "ndcg@10")].mean_b - by[("better", "ndcg@10")].mean_a == pytest.approx(0.1)


def test_read_topics_and_qrels(tmp_path: Path) -> None:
    topics = read_topics(DATA / "topics.tsv")
    qrels = read_qrels(DATA / "qrels.txt")
    assert len(topics) == 20 and topics["q01"] == "collaborative filtering"
    assert sum(len(r) for r in qrels.values()) == 82 and qrels["q01"]["cs-003"] == 1
    trec = tmp_path / "topics.txt"
    trec.write_text("<top>\n<num> Number: 401\n<title> foreign minorities, Germany\n<desc> Description:\nx\n</top>\n"
                    "<top>\n<num> 402 <title> behavioral genetics\n</top>\n")
    assert read_topics(trec) == {"401": "foreign minorities, Germany", "402": "behavioral genetics"}
    bad = tmp_path / "bad.tsv"
    bad.write_text("q1\tfine\nq2 no tab\n")
    with pytest.raises(InputError, match="expected 'qid<TAB>query'") as e:
        read_topics(bad)
    assert e.value.one_line().startswith(f"{bad}:2:")
    bad.write_text("q1 0 d1 1\nq1 0 d2 high\n")
    with pytest.raises(InputError, match="relevance 'high'"):
        read_qrels(bad)


def test_write_runs_in_trec_format(tmp_path: Path) -> None:
    (path,) = write_runs({"original": {"q1": ["a", "b"]}}, tmp_path)
    assert path.read_text().splitlines() == ["q1 Q0 a 1 2 original", "q1 Q0 b 2 1 original"]


def test_enrichment_gain_on_the_test_collection(cluster: Cluster, tmp_path: Path) -> None:
    index = cluster.load_sample()
    base = ["eval-retrieval", "--url", cluster.url, "--target-index", index, "--topics", str(DATA / "topics.tsv"),
            "--qrels", str(DATA / "qrels.txt"), "--format", "json"]
    runner = CliRunner()
    r = runner.invoke(main, [*base, "--fields", "title,text", "--with-enrichment"])
    assert r.exit_code == 0, r.output
    assert "no document of" in r.stderr  # not enriched yet: said, and both runs are the same
    r = enrich(cluster, "--target-index", index, "--index", index, "--text-fields", "title,text", "--method", "vote")
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, [*base, "--fields", "title,text", "--with-enrichment", "--runs", str(tmp_path)])
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    orig, enr = result["runs"]["original"], result["runs"]["enriched"]
    assert orig["topics"] == enr["topics"] == 20
    assert enr["fields"] == ["title", "text", "esrank.keyphrases.phrase.text"]
    for run in (orig, enr):
        assert all(0.0 <= run[m] <= 1.0 for m in ("map", "ndcg@10", "recall@100"))
    # neighbour keyphrases name what documents are about: BM25 finds the relevant ones better
    assert enr["map"] > orig["map"] + 0.05 and enr["recall@100"] > orig["recall@100"]
    tests = {t["metric"]: t for t in result["tests"] if t["b"] == "enriched"}
    assert set(tests) == {"map", "ndcg@10", "recall@100"} and tests["map"]["n"] == 20
    # the rank_feature form runs where the server has rank features (OpenSearch here), and is compared too
    if cluster.kind == "opensearch":
        feat = result["runs"]["rank_feature"]
        assert feat["topics"] == 20 and feat["fields"] == ["title", "text", "esrank.scores"]
        assert feat["map"] > orig["map"]
        assert {t["metric"] for t in result["tests"] if t["b"] == "rank_feature"} == set(tests)
    else:
        assert "rank_feature" not in result["runs"] and "the rank_feature form is left out" in r.stderr
    assert tests["map"]["mean_b"] - tests["map"]["mean_a"] == pytest.approx(enr["map"] - orig["map"], abs=1e-3)
    # the runs written in TREC format give the same per-topic MAP when scored again
    run = {}
    for line in (tmp_path / "enriched.run").read_text().splitlines():
        qid, _, doc, *_ = line.split()
        run.setdefault(qid, []).append(doc)
    again = score_run(run, read_qrels(DATA / "qrels.txt"))
    assert all(math.isclose(again[q]["map"], v["map"]) for q, v in enr["per_topic"].items())
    # the gold keyphrases are the generous upper bound the collection README describes
    r = runner.invoke(main, [*base, "--fields", "title,text,keyphrases.text"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["runs"]["original"]["ndcg@10"] > orig["ndcg@10"]


def test_query_forms_render_from_the_shipped_templates() -> None:
    from esrank.retrieval.search_templates import QueryForm, query_phrases

    assert query_phrases("Sensor network, energy.") == [
        "sensor network energy", "sensor network", "network energy", "sensor", "network", "energy"]
    body = QueryForm.load("bm25").render('say "hi" {{x}}', fields=["title", "abstract"])
    assert body == {"query": {"multi_match": {"query": 'say "hi" {{x}}', "fields": ["title", "abstract"],
                                              "type": "most_fields"}}}
    body = QueryForm.load("keyphrases").render("a b", fields=["title"], boost=2.0)
    should = body["query"]["bool"]["should"]
    assert should[1]["multi_match"] == {"query": "a b", "fields": ["esrank.keyphrases.phrase.text"],
                                        "type": "most_fields", "boost": 2.0}
    body = QueryForm.load("rank_feature").render("deep learning", fields=["title"], field="kp")
    clauses = body["query"]["bool"]["should"][1:]
    assert [c["rank_feature"]["field"] for c in clauses] == ["kp.scores.deep learning", "kp.scores.deep",
                                                             "kp.scores.learning"]
    assert all(c["rank_feature"]["boost"] == 1.0 for c in clauses)
    with pytest.raises(Exception, match="unknown query form"):
        QueryForm.load("nope")
