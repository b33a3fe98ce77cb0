"""Server facts read from the server itself (issue 18): the analyzer each distribution really gets and the one-line
error for an unsupported server version (kill-and-resume on both servers: test_load_fault.py)."""
from __future__ import annotations

import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest
from click.testing import CliRunner

from esrank.commands import main
from esrank.corpus import Document
from esrank.retrieval.factory import BackendOptions, open_backend


def _http(method: str, url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


# -- the analyzer, read back from the server ------------------------------------------------------------------
@pytest.mark.server
@pytest.mark.parametrize("kind,analyzer,stem", [("opensearch", "english", "network"),
                                                 ("elasticsearch", "standard", "networks")])
def test_the_index_gets_the_documented_analyzer(kind: str, analyzer: str, stem: str,
                                                request: pytest.FixtureRequest) -> None:
    """OpenSearch (with analysis-common) gets the `english` analyzer; the Elasticsearch integ-test node has no
    such module and gets the documented `standard` fallback (docs/retrieval.md, mappings/documents.standard.json)."""
    url = request.getfixturevalue("es_server" if kind == "elasticsearch" else "os_server").url
    index = f"analyzer-{kind}"
    backend = open_backend(BackendOptions.server(index, url, backend=kind), create=True, overwrite=True)
    try:
        backend.bulk_add([Document("a", "neural networks", "")])
        settings = _http("GET", f"{url}/{index}/_settings")[index]["settings"]["index"]
        assert settings["analysis"]["analyzer"]["esrank_text"]["type"] == analyzer
        assert settings["similarity"]["esrank_bm25"] == {"type": "BM25", "k1": "1.5", "b": "0.75"}
        mapping = _http("GET", f"{url}/{index}/_mapping")[index]["mappings"]
        assert mapping["_meta"]["esrank_analyzer"] == analyzer
        assert {mapping["properties"][f].get("analyzer") for f in ("title", "text", "title_text")} == {"esrank_text"}
        tokens = _http("POST", f"{url}/{index}/_analyze", {"field": "title", "text": "Networks"})["tokens"]
        assert [t["token"] for t in tokens] == [stem]
    finally:
        backend.close()


# -- a server of a version esrank does not support --------------------------------------------------------------
@pytest.fixture
def fake_server() -> Iterator[Any]:
    """A local HTTP server that answers ``GET /`` with a given body (and optionally Elastic's product header)."""
    servers: list[ThreadingHTTPServer] = []

    def start(root: dict[str, Any], product_header: bool) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                data = json.dumps(root if self.path.split("?")[0] == "/" else {"error": "no handler"}).encode()
                self.send_response(200 if self.path.split("?")[0] == "/" else 404)
                self.send_header("Content-Type", "application/json")
                if product_header:
                    self.send_header("X-Elastic-Product", "Elasticsearch")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_HEAD = do_GET

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


ES7 = {"name": "n", "cluster_name": "c", "tagline": "You Know, for Search",
       "version": {"number": "7.17.9", "build_flavor": "default", "lucene_version": "8.11.1"}}
ES7_OLD = {"name": "n", "cluster_name": "c", "tagline": "You Know, for Search",  # before 7.14: no product header
           "version": {"number": "7.10.2", "build_flavor": "oss", "lucene_version": "8.7.0"}}
OS1 = {"name": "n", "cluster_name": "c", "tagline": "The OpenSearch Project: https://opensearch.org/",
       "version": {"distribution": "opensearch", "number": "1.3.9"}}


@pytest.mark.parametrize("root,header,backend", [
    (ES7, True, "auto"), (ES7, True, "elasticsearch"), (ES7, True, "opensearch"),
    (ES7_OLD, False, "auto"), (ES7_OLD, False, "elasticsearch"), (ES7_OLD, False, "opensearch"),
    (OS1, False, "auto"), (OS1, False, "opensearch"),
])
def test_an_unsupported_server_version_is_one_line(fake_server: Any, tmp_path: Path, root: dict[str, Any],
                                                   header: bool, backend: str) -> None:
    url = fake_server(root, header)
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"id": "a", "title": "t", "abstract": "x"}) + "\n")
    r = CliRunner().invoke(main, ["-q", "load", str(data), "--index", "x", "--url", url, "--backend", backend,
                                  "--max-retries", "0", "--timeout", "10"])
    number = root["version"]["number"]
    if root is OS1:
        want = (f"esrank: error: opensearch server {number} at {url} is not supported: esrank uses the opensearch-py "
                "2.x client and needs a opensearch 2.x server\n")
    else:  # whatever --backend says: the user learns that this Elasticsearch is too old, not to switch backend
        want = (f"esrank: error: elasticsearch server {number} at {url} is not supported: esrank uses the "
                "elasticsearch 8.x client and needs a elasticsearch 8.x server\n")
    assert r.exit_code == 3 and r.output == want
