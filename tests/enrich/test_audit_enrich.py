"""esrank enrich: a document that keeps changing is given up after --max-redo re-reads (and counted as failed), and
--rate really bounds the speed (issue 18). Real Elasticsearch 8 / OpenSearch 2 nodes."""
from __future__ import annotations

import time
from typing import Any

import pytest

import esrank.enrich.job as job_module
from clusters import BY_ID, Cluster, cluster, enrich  # noqa: F401 - the fixture is shared
from esrank.enrich.job import EnrichSettings, enrich_index
from esrank.retrieval.factory import BackendOptions


def test_a_document_that_keeps_changing_is_given_up(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another client rewrites one document before each of esrank's writes: every write conflicts, esrank re-reads
    and redoes it max_redo times, then gives up on that document alone, counts it as failed and never overwrites
    the other client's change."""
    index = cluster.load_sample()
    victim, max_redo = "cs-004", 3
    real_write = job_module.write_updates
    rewrites: list[int] = []

    def write_after_a_concurrent_change(es: Any, field: str, updates: Any) -> Any:
        if any(h.id == victim for h, _ in updates):
            rewrites.append(len(rewrites) + 1)
            cluster.client.update(index=index, id=victim, body={"doc": {"edits": len(rewrites)}}, refresh=True)
        return real_write(es, field, updates)

    monkeypatch.setattr(job_module, "write_updates", write_after_a_concurrent_change)
    report = enrich_index(BackendOptions.server(index, cluster.url, backend=cluster.kind),
                          EnrichSettings(index, text_fields=("title", "text"), batch_size=30, max_redo=max_redo),
                          method="vote")
    st = report.stats
    assert len(rewrites) == max_redo + 1  # the first write and each redo met a fresh change
    assert st.seen == 90 and st.enriched == 89 and st.redone == max_redo
    assert st.failed == [(victim, f"changed concurrently {max_redo + 1} times in a row")]
    docs = cluster.docs(index)
    assert docs[victim]["_source"]["edits"] == max_redo + 1 and "esrank" not in docs[victim]["_source"]
    assert docs[victim]["_version"] == 1 + max_redo + 1  # loaded, then the other client's writes only
    assert all("esrank" in d["_source"] for i, d in docs.items() if i != victim)


def test_rate_bounds_the_documents_per_second(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """`esrank enrich --rate 6 --batch-size 30`: page n+1 is read no sooner than n·30/6 s after the first (without
    --rate a page of 30 takes about 1.5 s here)."""
    index = cluster.load_sample()
    real_scan = job_module.scan
    read_at: list[float] = []

    def timed_scan(*args: Any, **kw: Any) -> Any:
        for page in real_scan(*args, **kw):
            read_at.append(time.perf_counter())
            yield page

    monkeypatch.setattr(job_module, "scan", timed_scan)
    r = enrich(cluster, "--index", index, "--target-index", index, "--text-fields", "title,text", "--method", "vote",
               "--batch-size", "30", "--rate", "6", "--field", "rated", "-q")
    assert r.exit_code == 0, r.output
    docs = cluster.docs(index)
    assert sum("rated" in d["_source"] for d in docs.values()) == 90
    assert len(read_at) == 3
    for n, t in enumerate(read_at[1:], start=1):
        # the clock starts just before the first page is read: allow that first read's time (measured < 0.1 s)
        assert t - read_at[0] >= n * 30 / 6 - 1.0, (n, t - read_at[0])
