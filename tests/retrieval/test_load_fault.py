"""The server dies in the middle of a load: the load stops with a clear error, ``--resume`` completes it exactly."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from esrank.errors import BackendError
from esrank.retrieval.elastic import ElasticBackend
from esrank.retrieval.factory import BackendOptions, open_backend
from esrank.retrieval.loading import load_corpus
from servers import Server

N_DOCS = 3000
BATCH = 100
KILL_AFTER_CHUNKS = 8


class KillingBackend(ElasticBackend):
    """A real Elasticsearch/OpenSearch backend whose server is SIGKILLed after a number of bulk chunks."""

    server: Server
    chunks = 0

    def _send(self, docs, result, on_failure):  # type: ignore[no-untyped-def]
        self.chunks += 1
        if self.chunks == KILL_AFTER_CHUNKS + 1:
            self.server.kill()
        return super()._send(docs, result, on_failure)


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["elasticsearch", "opensearch"])
def test_kill_restart_resume(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    server = request.getfixturevalue("es_server" if kind == "elasticsearch" else "os_server").server
    if server is None:
        pytest.skip(f"the test {kind} is a running server given by URL: this test cannot kill and restart it")
    data = tmp_path / "docs.jsonl"
    with open(data, "w") as fh:
        for i in range(N_DOCS):
            fh.write(json.dumps({"id": f"doc-{i:05d}", "title": f"title {i % 97}",
                                 "abstract": f"word{i % 13} word{i % 31} text {i}", "keyphrases": [f"kp{i % 7}"]})
                     + "\n")
    options = BackendOptions.server(f"fault-{kind}", server.url, backend=kind, max_retries=2, timeout=10)
    backend = open_backend(options, create=True, overwrite=True)
    killer = KillingBackend(f"fault-{kind}", backend.cluster.config, kind)  # type: ignore[attr-defined]
    killer.server = server
    backend.close()
    try:
        with pytest.raises(BackendError) as err:
            load_corpus(killer, data, batch_size=BATCH)
    finally:
        if not server.healthy():
            server.start()  # same port, same data directory: acknowledged documents survive the crash
    message = err.value.reason
    assert f"cannot reach {kind}" in message and "run the same command with --resume" in message
    assert f"{KILL_AFTER_CHUNKS * BATCH} documents were indexed so far" in message

    backend = open_backend(options)
    before = backend.count()
    assert before == KILL_AFTER_CHUNKS * BATCH
    report = load_corpus(backend, data, batch_size=BATCH, resume=True)
    assert report.already_present == before
    assert report.indexed == report.created == N_DOCS - before and not report.failed
    assert report.balanced and report.count_after == N_DOCS == backend.count()
    ids = [f"doc-{i:05d}" for i in range(N_DOCS)]
    assert backend.ids_present(ids) == set(ids)  # nothing lost; with count == N, nothing duplicated
    backend.close()
