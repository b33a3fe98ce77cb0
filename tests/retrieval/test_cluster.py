"""The cluster surface: URL and connection errors in one line, retries shown as they happen, loads behind an
alias switched atomically, the enrichment field as an index template, and rank features — on real servers."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from clusters import SAMPLE, Cluster, cluster, enrich  # noqa: F401 - the fixture is shared
from esrank.commands import main
from esrank.corpus import sample_corpus_path
from esrank.errors import ConfigError
from esrank.retrieval.cluster import Cluster as EsCluster, ConnectionConfig

SECRET = "Pa#Secret789"


@pytest.mark.parametrize("url", [f"http://elastic:{SECRET}@127.0.0.1:99999", f"http://elastic:{SECRET}@127.0.0.1:abc",
                                 "http://elastic:Pa/ss?word#x@127.0.0.1:abc", "http://127.0.0.1:99999"])
def test_bad_ports_give_one_line_without_the_password(url: str) -> None:
    r = CliRunner().invoke(main, ["load", str(sample_corpus_path()), "--index", "kp", "--url", url])
    assert r.exit_code == 2 and not isinstance(r.exception, ValueError), r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("esrank: error: invalid server URL"), r.output
    assert "port" in lines[0] and SECRET not in r.output and "Pa/ss" not in r.output and "word#x" not in r.output


def test_unencoded_password_characters_are_kept_and_never_shown() -> None:
    for password in (SECRET, "a/b?c#d", "p@ss:w#rd"):
        config = ConnectionConfig(f"https://elastic:{password}@search.example.org:9243/")
        assert config.url == "https://search.example.org:9243" and config.username == "elastic"
        assert config.password == password and password not in repr(config)
        assert config.redact(f"failed with {password}") == "failed with ***"
    with pytest.raises(ConfigError, match="invalid server URL"):
        ConnectionConfig("ftp://host:9200")


def test_connection_refused_shows_each_retry_unless_quiet() -> None:
    base = ["load", str(sample_corpus_path()), "--index", "kp", "--url", f"http://elastic:{SECRET}@127.0.0.1:9",
            "--backend", "elasticsearch", "--max-retries", "2"]
    r = CliRunner().invoke(main, base)
    assert r.exit_code == 3, r.output
    lines = r.output.strip().splitlines()
    assert [x for x in lines if "retry" in x] == [x for x in lines[:2]]
    assert "retry 1 of 2" in lines[0] and "retry 2 of 2" in lines[1] and "cannot reach" in lines[0]
    assert lines[-1].startswith("esrank: error: connect: cannot reach") and len(lines) == 3
    assert SECRET not in r.output
    r = CliRunner().invoke(main, ["-q", *base])
    assert r.exit_code == 3 and len(r.output.strip().splitlines()) == 1, r.output


@pytest.mark.parametrize("target", ["*", "papers-*", "papers,kp", "pap?rs"])
def test_wildcard_targets_need_allow_wildcards(target: str) -> None:
    r = CliRunner().invoke(main, ["enrich", "--url", "http://127.0.0.1:9", "--index", "kp", "--target-index", target,
                                  "--method", "vote", "--no-carbon"])
    assert r.exit_code == 2 and "--allow-wildcards" in r.output, r.output
    assert r.output.count("\n") == 1


def _load(cluster: Cluster, *args: str) -> str:
    r = CliRunner().invoke(main, ["load", str(sample_corpus_path()), "--url", cluster.url, *args])
    assert r.exit_code == 0, r.output
    return r.output


def test_load_behind_an_alias_switches_atomically(cluster: Cluster) -> None:  # noqa: F811
    alias = cluster.name("alias")
    es = EsCluster(ConnectionConfig(cluster.url), cluster.kind)
    try:
        out = _load(cluster, "--index", alias, "--alias")
        (first,) = es.alias_indices(alias)
        assert first.startswith(f"{alias}-") and f"alias '{alias}' now points to '{first}'" in out
        assert es.count(alias) == len(SAMPLE)
        out = _load(cluster, "--index", alias, "--alias", "--keep-old")  # a reload: new index, old kept
        (second,) = es.alias_indices(alias)
        assert second != first and es.index_exists(first) and f"(was {first}, kept)" in out
        es.delete_index(first)
        _load(cluster, "--index", alias, "--alias")  # the old index is deleted after the switch
        (third,) = es.alias_indices(alias)
        assert third not in (first, second) and not es.index_exists(second) and es.count(alias) == len(SAMPLE)
        # neighbours and ranking read through the alias
        r = CliRunner().invoke(main, ["neighbours", str(sample_corpus_path()), "--url", cluster.url, "--index", alias,
                                      "--out", "-", "-k", "2"])
        assert r.exit_code == 0 and len(r.stdout.splitlines()) == len(SAMPLE), r.output
        # a plain index of that name is refused, and replaced by the alias only with --overwrite
        plain = cluster.name("plain")
        _load(cluster, "--index", plain)
        r = CliRunner().invoke(main, ["load", str(sample_corpus_path()), "--url", cluster.url, "--index", plain,
                                      "--alias"])
        assert r.exit_code == 2 and "is an index, not an alias" in r.output
        _load(cluster, "--index", plain, "--alias", "--overwrite")
        assert es.is_alias(plain) and es.count(plain) == len(SAMPLE)
        # --overwrite on an alias without --alias still recreates one plain index
        for i in es.alias_indices(plain):
            cluster.made.append(i)
        _load(cluster, "--index", alias, "--overwrite")
        assert not es.is_alias(alias) and es.count(alias) == len(SAMPLE)
    finally:
        es.close()


def test_enrichment_template_and_rank_features(cluster: Cluster) -> None:  # noqa: F811
    training = cluster.load_sample()
    prefix = cluster.name("tpl")
    es = EsCluster.connect(ConnectionConfig(cluster.url))
    try:
        target = f"{prefix}-a"
        cluster.made.append(target)
        r = enrich(cluster, "--index", training, "--target-index", training, "--text-fields", "title,text",
                   "--method", "vote", "--install-template", f"{prefix}-*")
        assert r.exit_code == 0, r.output
        assert f"index template 'esrank-enrichment-esrank' for '{prefix}-*' installed" in r.output
        es.create_index(target)  # a new index matching the pattern gets the field from the template
        props = es.get_mappings(target)[target]["properties"]["esrank"]["properties"]
        assert {"keyphrases", "absent", "model", "version", "source_hash"} <= set(props)
        rank_features = es.has_module("mapper-extras")
        assert rank_features == (cluster.kind == "opensearch")  # the ES integ-test zip lacks the module
        assert ("scores" in props) == rank_features
        doc = cluster.docs(training)["cs-001"]["_source"]["esrank"]
        assert doc["source_hash"] and len(doc["source_hash"]) == 16
        if rank_features:
            phrases = [k["phrase"] for k in doc["keyphrases"]]
            assert doc["scores"] and set(doc["scores"]) <= {p.replace(".", " ") for p in phrases}
            hits = es.search(training, {"query": {"rank_feature": {"field": f"esrank.scores.{phrases[0]}"}}})
            assert "cs-001" in [h["_id"] for h in hits["hits"]["hits"]]
        else:
            assert "scores" not in doc
    finally:
        es.delete_index_template(f"esrank-enrichment-esrank")
        es.delete_component_template("esrank-enrichment-esrank")
        es.close()


def test_changed_source_is_enriched_again(cluster: Cluster) -> None:  # noqa: F811
    index = cluster.load_sample()
    args = ("--index", index, "--target-index", index, "--text-fields", "title,text", "--method", "vote")
    assert enrich(cluster, *args).exit_code == 0
    cluster.client.update(index=index, id="cs-001", body={"doc": {"title": "Gene expression in yeast"}},
                          params={"refresh": "true"}) if cluster.kind == "opensearch" else \
        cluster.client.update(index=index, id="cs-001", doc={"title": "Gene expression in yeast"}, refresh=True)
    r = enrich(cluster, *args)
    assert r.exit_code == 0 and "enriched 1 " in r.output and f"{len(SAMPLE) - 1} already enriched" in r.output, \
        r.output
    json.dumps(r.output)


def test_one_module_talks_to_the_server() -> None:
    root = Path(__file__).resolve().parents[2] / "esrank"
    offenders = []
    for path in root.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if path.name != "cluster.py" and any(s in text for s in ("import opensearchpy", "from opensearchpy",
                                                                  "from elasticsearch", "import elasticsearch",
                                                                  ".client.", "kind == \"elasticsearch\"")):
            offenders.append(str(path.relative_to(root)))
    assert offenders == []


def test_template_joins_an_existing_index_template(cluster: Cluster) -> None:  # noqa: F811
    from esrank.enrich.write import install_template

    prefix = cluster.name("own")
    es = EsCluster.connect(ConnectionConfig(cluster.url))
    try:
        es.put_index_template(f"{prefix}-users", [f"{prefix}-*"], priority=7,
                              template={"mappings": {"properties": {"lang": {"type": "keyword"}}}})
        said = install_template(es, f"{prefix}-*", "kp_field")
        assert said == f"component template 'esrank-enrichment-kp_field' added to index template '{prefix}-users' " \
                       f"({prefix}-*)"
        template = es.get_index_template(f"{prefix}-users")
        assert template is not None and template["composed_of"] == ["esrank-enrichment-kp_field"]
        assert template["priority"] == 7 and es.get_index_template("esrank-enrichment-kp_field") is None
        assert install_template(es, f"{prefix}-*", "kp_field") == said  # idempotent
        es.create_index(f"{prefix}-1")
        cluster.made.append(f"{prefix}-1")
        props = es.get_mappings(f"{prefix}-1")[f"{prefix}-1"]["properties"]
        assert props["lang"] == {"type": "keyword"} and "keyphrases" in props["kp_field"]["properties"]
    finally:
        es.delete_index_template(f"{prefix}-users")
        es.delete_component_template("esrank-enrichment-kp_field")
        es.close()


def test_backends_are_context_managers(backend_options) -> None:  # type: ignore[no-untyped-def]
    from esrank.retrieval.factory import open_backend

    options = backend_options("ctx")
    with open_backend(options, create=True) as backend:
        assert backend.bulk_add(SAMPLE[:3]).indexed == 3
    with open_backend(options) as backend:
        assert backend.count() == 3


def test_an_incomplete_aliased_load_leaves_the_alias_and_resume_finishes_it(cluster: Cluster, tmp_path: Path  # noqa: F811
                                                                             ) -> None:
    alias = cluster.name("resume")
    _load(cluster, "--index", alias, "--alias")
    es = EsCluster(ConnectionConfig(cluster.url), cluster.kind)
    try:
        (first,) = es.alias_indices(alias)
        docs = [{"id": f"n{i}", "title": f"new {i}", "abstract": "text", "keyphrases": ["x" * 40000 if i == 3 else "ok"]}
                for i in range(8)]
        data = tmp_path / "new.jsonl"
        data.write_text("".join(json.dumps(d) + "\n" for d in docs))
        r = CliRunner().invoke(main, ["load", str(data), "--url", cluster.url, "--index", alias, "--alias",
                                      "--dead-letter", str(tmp_path / "dead.jsonl")])
        assert r.exit_code == 1 and f"alias '{alias}' left as it was" in r.output, r.output
        assert es.alias_indices(alias) == [first] and es.count(alias) == len(SAMPLE)
        pending = [i for i in es.indices(f"{alias}-*") if i != first]
        assert len(pending) == 1 and es.count(pending[0]) == 7
        cluster.made.append(pending[0])
        docs[3]["keyphrases"] = ["fixed"]
        data.write_text("".join(json.dumps(d) + "\n" for d in docs))
        r = CliRunner().invoke(main, ["load", str(data), "--url", cluster.url, "--index", alias, "--alias",
                                      "--resume"])
        assert r.exit_code == 0, r.output
        assert "indexed 1 (1 new)" in r.output and "7 already indexed" in r.output, r.output
        assert es.alias_indices(alias) == pending and es.count(alias) == 8 and not es.index_exists(first)
    finally:
        es.close()
