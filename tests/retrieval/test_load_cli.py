"""``esrank load`` / ``esrank neighbours`` end to end: summaries, resume, bad records, dead letters, secrets."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from esrank.commands import main
from esrank.corpus import sample_corpus_path
from esrank.retrieval.factory import open_backend


def _write(path: Path, records: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def _loc(opts) -> list[str]:  # type: ignore[no-untyped-def]
    """CLI arguments selecting the index of some BackendOptions."""
    args = ["--index", opts.index, "--backend", opts.backend]
    return args + (["--url", opts.url] if opts.url else ["--path", str(opts.path)])


def test_load_resume_and_neighbours(backend_options, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    opts = backend_options("cli")
    runner = CliRunner()
    r = runner.invoke(main, ["-q", "load", str(sample_corpus_path()), *_loc(opts), "--batch-size", "40"])
    assert r.exit_code == 0, r.output
    assert "read 90, indexed 90 (90 new), skipped 0" in r.output and "index holds 90 documents" in r.output
    r = runner.invoke(main, ["-q", "load", str(sample_corpus_path()), *_loc(opts), "--resume"])
    assert r.exit_code == 0, r.output
    assert "indexed 0 (0 new), skipped 90 (0 bad records, 90 already indexed)" in r.output
    out = tmp_path / "pools.jsonl"
    r = runner.invoke(main, ["-q", "neighbours", str(sample_corpus_path()), *_loc(opts), "-k", "3", "--out", str(out)])
    assert r.exit_code == 0, r.output
    pools = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(pools) == 90 and pools[0]["id"] == "cs-001"
    for p in pools:
        assert [n["rank"] for n in p["neighbours"]] == [1, 2, 3] and p["id"] not in {n["id"] for n in p["neighbours"]}
        for c in p["candidates"]:
            assert c["count"] == len(c["neighbour_ranks"]) == len(c["bm25_scores"]) >= 1
            assert c["bm25_scores"] == [p["neighbours"][r - 1]["score"] for r in c["neighbour_ranks"]]


def test_bad_records_fail_or_are_skipped_and_counted(tmp_path: Path) -> None:
    data = _write(tmp_path / "d.jsonl", [{"id": "a", "title": "t1", "abstract": "x", "keyphrases": ["k"]},
                                         "{not json", {"id": "b", "title": "t2", "abstract": "y"},
                                         {"id": "c", "title": 3}])
    loc = ["--index", "bad", "--path", str(tmp_path / "ix")]
    r = CliRunner().invoke(main, ["-q", "load", str(data), *loc])
    assert r.exit_code == 2 and f"esrank: error: {data}:2: malformed JSON" in r.output
    assert "the load stopped there: the 1 documents read before were indexed (1 new)" in r.output  # said, not silent
    rejects = tmp_path / "rejects.jsonl"
    r = CliRunner().invoke(main, ["-q", "load", str(data), *loc, "--on-error", "skip", "--rejects", str(rejects)])
    assert r.exit_code == 0, r.output
    assert "read 4, indexed 2 (1 new), skipped 2 (2 bad records, 0 already indexed), failed 0" in r.output
    assert [json.loads(x)["line"] for x in rejects.read_text().splitlines()] == [2, 4]


@pytest.mark.server
def test_item_failures_go_to_the_dead_letter_file(es_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    huge = "x" * 40000  # a keyword term longer than Lucene's 32766-byte limit: the server rejects this item
    docs = [{"id": f"d{i}", "title": f"doc {i}", "abstract": "text", "keyphrases": [huge if i == 1 else "ok"]}
            for i in range(5)]
    data = _write(tmp_path / "d.jsonl", docs)
    dead = tmp_path / "dead.jsonl"
    args = ["-q", "load", str(data), "--index", "deadletter", "--url", es_server.url, "--batch-size", "2",
            "--dead-letter", str(dead), "--overwrite"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1, r.output  # some documents failed
    assert "read 5, indexed 4 (4 new)" in r.output and "failed 1" in r.output and "index holds 4" in r.output
    assert "esrank: failed: d1: HTTP 400" in r.output
    (rec,) = [json.loads(x) for x in dead.read_text().splitlines()]
    assert rec["id"] == "d1" and rec["keyphrases"] == [huge] and len(rec["esrank_error"]) <= 300
    assert rec["esrank_error"].startswith("HTTP 400 document_parsing_exception: [1:56] failed to parse field "
                                          "[keyphrases] of type [keyword]")


@pytest.mark.server
def test_embedded_and_opensearch_agree_on_neighbours(os_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Both use Porter stemming and BM25 k1=1.5 b=0.75: nearly the same neighbours."""
    from esrank.corpus import read_documents
    from esrank.ranking.pools import neighbour_batches
    from esrank.retrieval.factory import BackendOptions

    docs = list(read_documents(sample_corpus_path()))
    found = {}
    for name, opts in [("embedded", BackendOptions("agree", backend="embedded", path=tmp_path / "e")),
                       ("opensearch", BackendOptions.server("agree", os_server.url, backend="opensearch"))]:
        b = open_backend(opts, create=True, overwrite=True)
        b.bulk_add(docs)
        found[name] = {d.id: [n.id for n in nbs] for d, nbs in neighbour_batches(b, docs, k=5)}
        b.close()
    e, o = found["embedded"], found["opensearch"]
    overlap = sum(len(set(e[i]) & set(o[i])) for i in e) / (5 * len(docs))
    top1 = sum(e[i][0] == o[i][0] for i in e) / len(docs)
    assert overlap >= 0.95 and top1 >= 0.9  # measured: 0.98 and 0.97 (tokenizer and norm-encoding differences)


@pytest.mark.server
def test_wrong_backend_for_the_server_is_one_clear_line(es_server, os_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = _write(tmp_path / "d.jsonl", [{"id": "a", "title": "t", "abstract": "x"}])
    r = CliRunner().invoke(main, ["load", str(data), "--index", "x", "--backend", "elasticsearch",
                                  "--url", os_server.url])
    assert r.exit_code == 3
    assert r.output == (f"esrank: error: {os_server.url} is not Elasticsearch (the elasticsearch client refuses it); "
                        "for OpenSearch use --backend opensearch\n")
    r = CliRunner().invoke(main, ["load", str(data), "--index", "x", "--backend", "opensearch", "--url", es_server.url])
    assert r.exit_code == 3
    assert r.output.startswith(f"esrank: error: {es_server.url} is elasticsearch 8.")
    assert r.output.endswith("not opensearch; use --backend elasticsearch\n")
    r = CliRunner().invoke(main, ["-q", "load", str(data), "--index", "autodetect", "--url", os_server.url])
    assert r.exit_code == 0 and "opensearch index 'autodetect': read 1, indexed 1" in r.output


@pytest.mark.server
def test_tls_failure_is_not_retried(es_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import time

    data = _write(tmp_path / "d.jsonl", [{"id": "a", "title": "t", "abstract": "x"}])
    https = es_server.url.replace("http://", "https://")  # the node speaks plain HTTP: the TLS handshake fails
    start = time.monotonic()
    r = CliRunner().invoke(main, ["load", str(data), "--index", "x", "--backend", "elasticsearch", "--url", https])
    assert r.exit_code == 3 and r.output.startswith(f"esrank: error: connect: TLS failure with elasticsearch at {https}")
    assert len(r.output.splitlines()) == 1 and time.monotonic() - start < 20  # no 8 rounds of backoff


SECRET_KEY = "c2VjcmV0LWFwaS1rZXktOTk5"  # nosec - test value
SECRET_PASSWORD = "hunter2-very-secret"  # nosec - test value


@pytest.mark.server
def test_secrets_never_appear(es_server, tmp_path: Path, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    data = _write(tmp_path / "d.jsonl", [{"id": "a", "title": "t", "abstract": "x"}])
    runs = []
    # An API key and a password in the environment, a working server (security off: credentials are ignored)
    monkeypatch.setenv("ESRANK_API_KEY", SECRET_KEY)
    runs.append(CliRunner().invoke(main, ["--debug", "load", str(data), "--index", "secrets", "--url", es_server.url]))
    monkeypatch.delenv("ESRANK_API_KEY")
    monkeypatch.setenv("ESRANK_PASSWORD", SECRET_PASSWORD)
    runs.append(CliRunner().invoke(main, ["--debug", "load", str(data), "--index", "secrets", "--url", es_server.url,
                                          "--username", "elastic"]))
    # ... an unreachable server (errors and retries), and credentials inside the URL
    runs.append(CliRunner().invoke(main, ["--debug", "load", str(data), "--index", "secrets", "--url",
                                          "http://127.0.0.1:9", "--username", "elastic", "--max-retries", "1"]))
    runs.append(CliRunner().invoke(main, ["load", str(data), "--index", "secrets", "--max-retries", "0",
                                          "--url", f"http://elastic:{SECRET_PASSWORD}@127.0.0.1:9"]))
    assert runs[0].exit_code == 0 and runs[1].exit_code == 0, runs[0].output + runs[1].output
    assert isinstance(runs[2].exception, Exception) and "cannot reach elasticsearch" in str(runs[2].exception)
    assert runs[3].exit_code == 3 and "esrank: error: connect: cannot reach" in runs[3].output
    assert "http://127.0.0.1:9" in runs[3].output
    texts = [r.output + repr(r.exception) + str(r.exception) for r in runs] + [caplog.text]
    for text in texts:
        assert SECRET_KEY not in text and SECRET_PASSWORD not in text
    from esrank.commands.retrieval import backend_options_from

    opts = backend_options_from({"index": "i", "backend": "auto", "url": "http://h:1", "path": None, "username": "u",
                                 "ca_certs": None, "insecure": False, "timeout": 1.0, "max_retries": 0,
                                 "max_query_terms": 10})
    assert SECRET_PASSWORD not in repr(opts) and opts.connection is not None and opts.connection.password == SECRET_PASSWORD
