"""`esrank serve` over real HTTP on loopback (uvicorn in a subprocess, the real MiniLM, an embedded index)."""
from __future__ import annotations

import json
import signal
import threading
import time

import pytest
from conftest import TOKEN, start_service

import esrank


@pytest.fixture(scope="module")
def library(index_path):
    """The library with the service's settings, to compare answers with."""
    with esrank.KeyphraseRanker.open(index="kp", path=index_path, k=5, threads=1, precision="fp32") as r:
        yield r


def _expected(library, docs):
    preds = library.rank_all([library.to_document({"id": d.id, "title": d.title, "text": d.text}) for d in docs])
    return [{"id": d.id, "keyphrases": [k.to_json() for k in p.keyphrases]} for d, p in zip(docs, preds)]


def _same(got, expected):
    assert [r["id"] for r in got] == [r["id"] for r in expected]
    for g, e in zip(got, expected):
        assert [k["phrase"] for k in g["keyphrases"]] == [k["phrase"] for k in e["keyphrases"]]
        assert [k["category"] for k in g["keyphrases"]] == [k["category"] for k in e["keyphrases"]]
        assert [k["score"] for k in g["keyphrases"]] == pytest.approx([k["score"] for k in e["keyphrases"]],
                                                                    abs=1e-4)


def test_one_document_and_many(service, library, sample_split):
    test = sample_split[1]
    status, one = service.call("POST", "/v1/keyphrases", {"title": test[0].title, "text": test[0].text})
    assert status == 200
    assert len(one["results"]) == 1 and one["results"][0]["id"] is None
    assert one["version"] == esrank.__version__ and one["model"] == "all-MiniLM-L6-v2"
    kps = one["results"][0]["keyphrases"]
    assert kps and set(kps[0]) == {"phrase", "score", "category"}
    status, many = service.call("POST", "/v1/keyphrases",
                                {"docs": [{"id": d.id, "title": d.title, "text": d.text} for d in test[:5]]})
    assert status == 200
    _same(many["results"], _expected(library, test[:5]))
    assert [k["phrase"] for k in kps] == [k["phrase"] for k in many["results"][0]["keyphrases"]]


def test_bare_strings_as_the_elasticsearch_custom_service_sends(service, library, sample_split):
    doc = sample_split[1][1]
    status, answer = service.call("POST", "/v1/keyphrases", {"docs": [doc.full_text]})
    assert status == 200
    assert [k.phrase for k in library.predict(doc.full_text)] == \
        [k["phrase"] for k in answer["results"][0]["keyphrases"]]


def test_concurrent_clients_get_the_library_answers_and_are_batched(service, library, sample_split):
    test = sample_split[1]
    _, before = service.call("GET", "/v1/info")
    answers: dict[int, dict] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(10)

    def client(i: int) -> None:
        try:
            start.wait()
            docs = [{"id": test[i].id, "title": test[i].title, "text": test[i].text}]
            status, body = service.call("POST", "/v1/keyphrases", {"docs": docs})
            assert status == 200, body
            answers[i] = body["results"][0]
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    _same([answers[i] for i in range(10)], _expected(library, test[:10]))
    _, after = service.call("GET", "/v1/info")
    requests = after["batching"]["requests"] - before["batching"]["requests"]
    batches = after["batching"]["batches"] - before["batching"]["batches"]
    assert requests == 10 and batches < requests  # callers were ranked together


def test_healthz_and_info(service):
    assert service.call("GET", "/healthz", token=None) == (200, {"status": "ok"})
    status, info = service.call("GET", "/v1/info")
    assert status == 200
    assert info["model"] == "all-MiniLM-L6-v2" and info["index"] == "kp" and info["backend"] == "embedded"
    assert info["k"] == 5 and info["method"] == "mix" and info["version"] == esrank.__version__
    assert info["limits"] == {"max_body_bytes": 20000, "max_docs": 8, "max_doc_chars": 5000}


@pytest.mark.parametrize("token", [None, "wrong-token", TOKEN + "x"])
def test_token_required(service, token):
    for method, path, body in (("POST", "/v1/keyphrases", {"title": "a", "text": "b"}), ("GET", "/v1/info", None)):
        status, answer = service.call(method, path, body, token=token)
        assert status == 401 and answer["status"] == 401 and "token" in answer["error"]


def test_bad_requests_answer_json_errors(service):
    cases = [
        (dict(raw=b"{not json"), 400),
        (dict(raw=b"\xff\xfe"), 400),
        (dict(body=[1, 2]), 422),
        (dict(body={"docs": "text"}), 422),
        (dict(body={"docs": []}), 422),
        (dict(body={"docs": [{"title": 3, "text": "x"}]}), 422),
        (dict(body={"docs": [{"title": "", "text": "  "}]}), 422),
        (dict(body={"docs": [7]}), 422),
        (dict(body={"something": "else"}), 422),
        (dict(body={"docs": [{"title": "t", "text": "x" * 5001}]}), 422),  # document too long
        (dict(body={"docs": [{"title": "t", "text": "x"}] * 9}), 413),  # too many documents
        (dict(raw=json.dumps({"docs": [{"title": "t", "text": "y" * 4000}] * 6}).encode()), 413),  # body > 20000 B
    ]
    for kw, expected in cases:
        status, answer = service.call("POST", "/v1/keyphrases", **kw)
        assert status == expected, (kw, answer)
        assert answer["status"] == expected and isinstance(answer["error"], str) and answer["error"]
        assert "Traceback" not in answer["error"]
    assert service.call("GET", "/nowhere")[0] == 404
    status, answer = service.call("GET", "/v1/keyphrases")
    assert status == 405 and answer["status"] == 405
    assert service.call("GET", "/healthz")[0] == 200  # still serving


def test_sigterm_finishes_in_flight_requests_then_exits(index_path, sample_split):
    """In-flight requests (held in a 1.5 s batching window) are answered after SIGTERM; then the port closes."""
    svc = start_service(index_path, "--method", "vote", "--max-wait-ms", "1500", "--max-batch", "1000")
    test = sample_split[1]
    results: list[tuple[int, dict]] = []

    def client(i: int) -> None:
        results.append(svc.call("POST", "/v1/keyphrases", {"docs": [{"title": test[i].title, "text": test[i].text}]}))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)  # the requests wait in the batching window
    svc.proc.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(60)
    assert svc.proc.wait(60) == 0
    assert len(results) == 4 and all(status == 200 and body["results"][0]["keyphrases"] for status, body in results)
    with pytest.raises(OSError):
        svc.call("GET", "/healthz", timeout=2)
    assert b"stopped" in svc.proc.stderr.read()


def test_a_missing_index_is_one_line(tmp_path):
    from click.testing import CliRunner

    from esrank.commands import main

    r = CliRunner().invoke(main, ["serve", "--index", "nope", "--path", str(tmp_path / "none"), "--method", "vote"])
    assert r.exit_code != 0 and r.stderr.startswith("esrank: error: ") and len(r.stderr.splitlines()) == 1
