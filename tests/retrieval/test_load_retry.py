"""Retries: a fault-injecting HTTP proxy in front of a real server answers 429/503 or drops connections."""
from __future__ import annotations

import http.server
import threading
import urllib.error
import urllib.request
from typing import Iterator

import pytest

from esrank.corpus import Document
from esrank.errors import BackendError
from esrank.retrieval.factory import BackendOptions, open_backend


class FaultProxy(http.server.ThreadingHTTPServer):
    """Forwards requests to ``target``; the next ``faults`` requests to ``_bulk`` get a scripted failure."""

    def __init__(self, target: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.target = target
        self.faults: list[str] = []  # "429", "503" or "drop", consumed one per _bulk request
        self.bulk_requests = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: FaultProxy

    def log_message(self, *args: object) -> None:
        pass

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if "_bulk" in self.path:
            self.server.bulk_requests += 1
            if self.server.faults:
                fault = self.server.faults.pop(0)
                if fault in ("drop", "lost"):  # lost: the server gets the request, the answer is lost
                    if fault == "lost":
                        req = urllib.request.Request(self.server.target + self.path, data=body, method=self.command,
                                                     headers={k: v for k, v in self.headers.items()
                                                              if k.lower() != "host"})
                        urllib.request.urlopen(req, timeout=30).read()
                    self.close_connection = True
                    self.connection.close()
                    return
                self.send_response(int(fault))
                self.send_header("Content-Type", "application/json")
                payload = b'{"error": {"type": "es_rejected_execution_exception", "reason": "busy"}, "status": %s}' \
                    % fault.encode()
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
        req = urllib.request.Request(self.server.target + self.path, data=body or None, method=self.command,
                                     headers={k: v for k, v in self.headers.items() if k.lower() != "host"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, headers, payload = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            status, headers, payload = e.code, e.headers, e.read()
        self.send_response(status)
        for k, v in headers.items():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward


@pytest.fixture
def proxy(es_server) -> Iterator[FaultProxy]:  # type: ignore[no-untyped-def]
    p = FaultProxy(es_server.url)
    t = threading.Thread(target=p.serve_forever, daemon=True)
    t.start()
    yield p
    p.shutdown()
    p.server_close()


DOCS = [Document(f"r{i}", f"retry title {i}", "some text", ["kp"]) for i in range(6)]


@pytest.mark.server
def test_429_503_and_dropped_connections_are_retried(proxy: FaultProxy) -> None:
    backend = open_backend(BackendOptions.server("retry", proxy.url, backend="elasticsearch", max_retries=3),
                           create=True, overwrite=True)
    proxy.faults = ["429", "drop", "503"]  # the first chunk fails three times, then goes through
    result = backend.bulk_add(DOCS, batch_size=3)
    assert (result.indexed, result.created, result.failed, result.retried) == (6, 6, [], 3)
    assert proxy.bulk_requests == 5 and backend.count() == 6  # 2 chunks + 3 retries, nothing duplicated
    backend.close()


@pytest.mark.server
def test_a_server_that_stays_busy_stops_the_load_with_a_clear_error(proxy: FaultProxy) -> None:
    backend = open_backend(BackendOptions.server("retry2", proxy.url, backend="elasticsearch", max_retries=2),
                           create=True, overwrite=True)
    proxy.faults = ["503"] * 10
    with pytest.raises(BackendError) as err:
        backend.bulk_add(DOCS, batch_size=3)
    assert proxy.bulk_requests == 3  # 1 + 2 retries
    assert "answered HTTP 503" in err.value.reason and "0 documents were indexed so far" in err.value.reason
    assert "--resume" in err.value.reason
    backend.close()


@pytest.mark.server
def test_a_lost_answer_is_resent_and_still_adds_up(proxy: FaultProxy, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from esrank.retrieval.loading import load_corpus

    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"id": d.id, "title": d.title, "abstract": d.text}) + "\n" for d in DOCS))
    backend = open_backend(BackendOptions.server("retry3", proxy.url, backend="elasticsearch", max_retries=3),
                           create=True, overwrite=True)
    proxy.faults = ["lost"]  # chunk 1 is indexed, its answer lost; the resend answers "updated"
    report = load_corpus(backend, data, batch_size=3)
    assert (report.indexed, report.created, report.maybe_created, report.retried) == (6, 3, 3, 1)
    assert report.balanced and report.count_after == 6
    backend.close()
