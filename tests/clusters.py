"""Live Elasticsearch/OpenSearch indexes for enrichment tests: the ``cluster`` fixture (one per server kind)
and ``esrank enrich`` through the CLI. Shared by tests/enrich/ and tests/evaluation/: import the fixture."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Iterator

import pytest
from click.testing import CliRunner

from esrank.commands import main
from esrank.corpus import read_documents, sample_corpus_path
from esrank.retrieval.cluster import Cluster as EsCluster, ConnectionConfig, _make_client
from esrank.retrieval.factory import BackendOptions, open_backend

SERVER_KINDS = [pytest.param("elasticsearch", marks=pytest.mark.server),
                pytest.param("opensearch", marks=pytest.mark.server)]
SAMPLE = list(read_documents(sample_corpus_path()))
BY_ID = {d.id: d for d in SAMPLE}


@dataclass
class Cluster:
    """A server for one test: its kind and URL, a raw client, and fresh index names."""

    kind: str
    url: str
    client: Any
    made: list[str]

    def name(self, prefix: str) -> str:
        index = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.made.append(index)
        return index

    def load_sample(self, prefix: str = "kp") -> str:
        """A training index of the 90 sample documents (title, text, keyphrases), created by esrank."""
        index = self.name(prefix)
        backend = open_backend(BackendOptions.server(index, self.url, backend=self.kind), create=True)
        assert not backend.bulk_add(SAMPLE).failed
        backend.close()
        return index

    def source(self, index: str, doc_id: str) -> dict[str, Any]:
        return get(self.client.get(index=index, id=doc_id))

    def docs(self, index: str) -> dict[str, dict[str, Any]]:
        """Every document: {id: {"_version", "_seq_no", "_source"}} (after a refresh)."""
        self.client.indices.refresh(index=index)
        resp = get(self.client.search(index=index, body={"size": 1000, "version": True,
                                                         "seq_no_primary_term": True, "query": {"match_all": {}}}))
        return {h["_id"]: h for h in resp["hits"]["hits"]}

    def mapping(self, index: str) -> dict[str, Any]:
        return get(self.client.indices.get_mapping(index=index))[index]["mappings"]


def get(resp: Any) -> Any:
    return getattr(resp, "body", resp)


@pytest.fixture(params=SERVER_KINDS)
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    kind = request.param
    server = request.getfixturevalue("es_server" if kind == "elasticsearch" else "os_server")
    client = _make_client(ConnectionConfig(server.url), kind)
    c = Cluster(kind, server.url, client, [])
    yield c
    with EsCluster(ConnectionConfig(server.url), kind) as es:
        for index in c.made:
            for concrete in es.alias_indices(index):
                es.delete_index(concrete)
            es.delete_index(index)
    client.close()


def enrich(cluster: Cluster, *args: str) -> Any:
    """``esrank enrich`` through the CLI (vote method unless a test asks otherwise)."""
    r = CliRunner().invoke(main, ["enrich", "--url", cluster.url, "--no-carbon", *args])
    return r
