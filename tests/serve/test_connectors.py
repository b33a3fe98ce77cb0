"""`esrank cluster print-connector`: the printed requests parse, and what the connector would send (after the
plugin's template substitution, see standin.py) is accepted by a real `esrank serve` whose answer maps into the
esrank enrichment field. The test servers have no ml-commons or x-pack inference: the plugins are stood in for."""
from __future__ import annotations

import json

import pytest
import standin
from click.testing import CliRunner
from conftest import TOKEN

import esrank
from esrank.commands import main
from esrank.retrieval.mappings import load_mapping

TRICKY = {"title": 'Quotes "inside", a back\\slash & <tags> = fun',
          "abstract": "Line one.\nLine two with\ttab and unicode: café, naïve; it's a 'test' of ranking."}


def print_connector(flavor: str, url: str, *extra: str, env: dict[str, str] | None = None) -> list[dict]:
    r = CliRunner().invoke(main, ["cluster", "print-connector", "--flavor", flavor, "--url", url,
                                  "--format", "json", *extra], env=env)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def library(index_path):
    with esrank.KeyphraseRanker.open(index="kp", path=index_path, k=5, threads=1, precision="fp32") as r:
        yield r


def _check_field(value: dict) -> None:
    props = load_mapping("enrichment")["properties"]
    assert set(value) <= set(props)
    assert value["keyphrases"] and all(set(k) <= set(props["keyphrases"]["properties"]) for k in value["keyphrases"])
    assert all(isinstance(k["phrase"], str) and isinstance(k["score"], float) for k in value["keyphrases"])


@pytest.mark.parametrize("flavor", ["opensearch", "elasticsearch"])
def test_console_form_parses(flavor, service):
    r = CliRunner().invoke(main, ["cluster", "print-connector", "--flavor", flavor, "--url", service.url])
    assert r.exit_code == 0
    blocks = [b for b in r.stdout.split("\n\n") if b.strip()]
    assert len(blocks) == (4 if flavor == "opensearch" else 2)
    for block in blocks:
        comment, request, body = block.split("\n", 2)
        assert comment.startswith("# ") and request.split(" ")[0] in ("PUT", "POST")
        assert isinstance(json.loads(body), dict)


def test_opensearch_connector_end_to_end(service, library, sample_split):
    requests = print_connector("opensearch", service.url, "--token-env", "T", env={"T": TOKEN})
    assert [r["path"] for r in requests] == ["/_cluster/settings", "/_plugins/_ml/connectors/_create",
                                             "/_plugins/_ml/models/_register?deploy=true",
                                             "/_ingest/pipeline/esrank-keyphrases"]
    connector = requests[1]["body"]
    assert connector["protocol"] == "http" and connector["credential"] == {"esrank_token": TOKEN}
    assert connector["actions"][0]["headers"]["Authorization"] == "Bearer ${credential.esrank_token}"
    regex = requests[0]["body"]["persistent"]["plugins.ml_commons.trusted_connector_endpoints_regex"][0]
    import re
    assert re.match(regex, service.url + "/v1/keyphrases")
    for document in (TRICKY, {"title": sample_split[1][2].title, "abstract": sample_split[1][2].text}):
        out = standin.opensearch_ingest(requests, document)
        _check_field(out["esrank"])
        assert out["esrank"]["model"] == "all-MiniLM-L6-v2" and out["esrank"]["version"] == esrank.__version__
        expected = library.predict({"title": document["title"], "text": document["abstract"]})
        assert [k["phrase"] for k in out["esrank"]["keyphrases"]] == [k.phrase for k in expected]
        assert [k["category"] for k in out["esrank"]["keyphrases"]] == [k.category for k in expected]


def test_elasticsearch_connector_end_to_end(service, library, sample_split):
    requests = print_connector("elasticsearch", service.url, "--token-env", "T", "--field", "kp_enrich",
                               "--text-field", "body", env={"T": TOKEN})
    assert [r["path"] for r in requests] == ["/_inference/sparse_embedding/esrank-keyphrases",
                                             "/_ingest/pipeline/esrank-keyphrases"]
    settings = requests[0]["body"]["service_settings"]
    assert settings["secret_parameters"] == {"esrank_token": TOKEN} and settings["request"] == '{"docs": ${input}}'
    for title, body in ((TRICKY["title"], TRICKY["abstract"]), (sample_split[1][3].title, sample_split[1][3].text)):
        out = standin.elasticsearch_ingest(requests, {"title": title, "body": body})
        assert set(out) == {"title", "body", "kp_enrich"}  # the temporary fields are removed
        _check_field(out["kp_enrich"])
        assert out["kp_enrich"]["model"] == "all-MiniLM-L6-v2"
        expected = library.predict(f"{title}. {body}")
        assert {k["phrase"]: k["score"] for k in out["kp_enrich"]["keyphrases"]} == \
            pytest.approx({k.phrase: k.score for k in expected}, abs=1e-4)
        scores = [k["score"] for k in out["kp_enrich"]["keyphrases"]]
        assert scores == sorted(scores, reverse=True)


def test_without_the_token_the_service_refuses_the_connector(service):
    for flavor, run in (("opensearch", lambda rq: standin.opensearch_ingest(rq, TRICKY)),
                        ("elasticsearch", lambda rq: standin.elasticsearch_ingest(rq, TRICKY))):
        requests = print_connector(flavor, service.url)
        assert "Authorization" not in json.dumps(requests)
        with pytest.raises(RuntimeError, match="HTTP 401"):
            run(requests)


def test_unreachable_service_and_bad_options():
    r = CliRunner().invoke(main, ["cluster", "print-connector", "--flavor", "elasticsearch", "--url",
                                  "http://127.0.0.1:9", "--format", "json"])
    assert r.exit_code == 0 and "cannot be reached" in r.stderr
    assert json.loads(r.stdout)[1]["body"]["processors"][2]["script"]["params"]["version"] == "unknown"
    r = CliRunner().invoke(main, ["cluster", "print-connector", "--flavor", "opensearch", "--url", "ftp://x"])
    assert r.exit_code == 2 and r.stderr.startswith("esrank: error: --url must be") and len(r.stderr.splitlines()) == 1
    r = CliRunner().invoke(main, ["cluster", "print-connector", "--flavor", "opensearch", "--url", "http://h:1",
                                  "--token-env", "ESRANK_NO_SUCH_VAR"], env={"ESRANK_NO_SUCH_VAR": None})
    assert r.exit_code == 2 and "ESRANK_NO_SUCH_VAR" in r.stderr
