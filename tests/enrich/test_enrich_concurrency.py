"""esrank enrich under concurrent writers and after a killed run (real Elasticsearch 8 / OpenSearch 2 nodes)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Sequence

from clusters import BY_ID, Cluster, cluster, enrich, get  # noqa: F401 - the fixture is shared
from esrank.enrich.job import EnrichSettings, enrich_index
from esrank.enrich.scan import PointInTime
from esrank.retrieval.cluster import Cluster as EsCluster, ConnectionConfig, _make_client
from esrank.retrieval.factory import BackendOptions

ROOT = Path(__file__).resolve().parents[2]


def _options(cluster: Cluster, index: str) -> BackendOptions:
    return BackendOptions.server(index, cluster.url, backend=cluster.kind)


def test_a_document_changed_during_the_run_is_reread_and_redone(cluster: Cluster) -> None:
    index = cluster.load_sample()
    victims = ["cs-002", "cs-003"]  # rewritten by another client after esrank read them
    news = BY_ID["news-010"]
    # k = 5: the top neighbours of a news text are news documents (the check below relies on it)
    settings = EnrichSettings(index, text_fields=("title", "text"), batch_size=100, top_n=5, k=5)
    # what the victims get from their original text (dry run), to show the redo really changes something
    stale = {s["id"]: s["esrank"]["keyphrases"] for s in enrich_index(
        _options(cluster, index), EnrichSettings(index, text_fields=("title", "text"), top_n=5, dry_run=True,
                                                 samples=90, k=5), method="vote").samples if s["id"] in victims}
    calls: list[Sequence[str]] = []

    def writer(ids: Sequence[str]) -> None:
        calls.append(ids)
        if len(calls) == 1:  # the page was read at the point in time; now another client rewrites two documents
            for i in victims:
                cluster.client.update(index=index, id=i, body={"doc": {"title": news.title, "text": news.text}},
                                      refresh=True)

    report = enrich_index(_options(cluster, index), settings, method="vote", on_batch_read=writer)
    st = report.stats
    assert (st.seen, st.enriched, st.redone, st.failed) == (90, 90, 2, [])
    docs = cluster.docs(index)
    for i in victims:
        src = docs[i]["_source"]
        assert src["title"] == news.title and src["text"] == news.text  # the writer's change survives
        assert docs[i]["_version"] == 3  # loaded, rewritten, enriched once
    # the victims' keyphrases are those of their new (news) text: the same as a fresh run on it gives
    fresh = enrich_index(_options(cluster, index), EnrichSettings(index, text_fields=("title", "text"), top_n=5, k=5,
                                                                  field="check", query={"ids": {"values": victims}}),
                         method="vote")
    assert fresh.stats.enriched == 2
    docs = cluster.docs(index)
    news_phrases = {p for d in BY_ID.values() if d.id.startswith("news-") for p in d.keyphrases}
    for i in victims:
        now = [k["phrase"] for k in docs[i]["_source"]["esrank"]["keyphrases"]]
        assert len(now) == 5 and set(now) <= news_phrases  # a news text now: news keyphrases only
        assert {k["phrase"] for k in stale[i]} - news_phrases  # before: (mostly) computer-science ones
        # (BM25 statistics move a little as documents are updated, so the fresh run may swap a near tie)
        assert len(set(now) & {k["phrase"] for k in docs[i]["_source"]["check"]["keyphrases"]}) >= 4


def test_a_busy_concurrent_writer_loses_nothing(cluster: Cluster) -> None:
    index = cluster.load_sample()
    stop = threading.Event()
    writes: dict[str, int] = {}
    ids = sorted(BY_ID)

    def busy() -> None:  # increments a counter in every document, round after round, while esrank runs
        n = 0
        while not stop.is_set():
            n += 1
            ops = []
            for i in ids:  # a partial update is get-then-index on the server: it retries its own conflicts
                ops += [{"update": {"_index": index, "_id": i, "retry_on_conflict": 10}}, {"doc": {"edits": n}}]
            resp = get(cluster.client.bulk(body=ops))
            for i, item in zip(ids, resp["items"]):
                if item["update"]["status"] == 200:
                    writes[i] = n
            time.sleep(0.3)

    t = threading.Thread(target=busy, daemon=True)
    t.start()
    try:
        report = enrich_index(_options(cluster, index),
                              EnrichSettings(index, text_fields=("title", "text"), batch_size=10, rate=60),
                              method="vote")
    finally:
        stop.set()
        t.join(30)
    st = report.stats
    assert st.seen == 90 and st.enriched == 90 and not st.failed
    assert st.redone > 0  # the writer did get in between reads and writes
    docs = cluster.docs(index)
    assert len(writes) == 90
    for i in ids:
        src = docs[i]["_source"]
        assert src["edits"] == writes[i]  # no write of the other client was lost
        assert src["esrank"]["model"] == "vote" and src["title"] == BY_ID[i].title


def _enriched(cluster: Cluster, index: str) -> int:
    cluster.client.indices.refresh(index=index)
    return int(get(cluster.client.count(index=index, body={"query": {"exists": {"field": "esrank.model"}}}))["count"])


def test_resume_after_a_killed_run(cluster: Cluster, tmp_path: Path) -> None:
    index = cluster.load_sample()
    cmd = [sys.executable, str(ROOT / "cli.py"), "--quiet", "enrich", "--url", cluster.url, "--no-carbon",
           "--target-index", index, "--index", index, "--text-fields", "title,text", "--method", "vote",
           "--batch-size", "5", "--rate", "12"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while _enriched(cluster, index) < 20:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    time.sleep(1.5)  # a bulk request in flight when the process died is still applied by the server
    first = cluster.docs(index)
    done_first = {i: h["_source"]["esrank"]["enriched_at"] for i, h in first.items() if "esrank" in h["_source"]}
    assert 20 <= len(done_first) < 90
    r = enrich(cluster, "--target-index", index, "--index", index, "--text-fields", "title,text", "--method", "vote",
               "--batch-size", "5", "--resume")
    assert r.exit_code == 0, r.output
    rest = 90 - len(done_first)
    assert f"{len(done_first)} documents were enriched by model vote" in r.output
    assert f"seen {rest}, enriched {rest} (0 with no keyphrase), skipped 0" in r.output
    docs = cluster.docs(index)
    assert all("esrank" in h["_source"] for h in docs.values())  # none missed
    assert all(h["_version"] == 2 for h in docs.values())  # loaded once, enriched once: none twice
    for i, stamp in done_first.items():
        assert docs[i]["_source"]["esrank"]["enriched_at"] == stamp


def test_slices_and_machines_share_the_index_without_overlap(cluster: Cluster) -> None:
    index = cluster.load_sample()
    seen = []
    conn = EsCluster(ConnectionConfig(cluster.url), cluster.kind)
    with PointInTime(conn, index, "5m") as pit:  # opened once, shared by the machines
        for part in ("0", "1"):  # two "machines", two workers each: four slices of one point in time
            r = enrich(cluster, "--target-index", index, "--index", index, "--text-fields", "title,text",
                       "--method", "vote", "--batch-size", "8", "--slices", "2", "--slice-max", "2",
                       "--slice-id", part, "--pit-id", str(pit.id))
            assert r.exit_code == 0, r.output
            line = next(x for x in r.output.splitlines() if x.startswith("seen "))
            n = int(line.split(",")[0].split()[1])
            assert f"seen {n}, enriched {n} (" in line
            seen.append(n)
    conn.close()
    assert sum(seen) == 90 and all(n > 0 for n in seen)
    docs = cluster.docs(index)
    assert all(h["_version"] == 2 and h["_source"]["esrank"]["model"] == "vote" for h in docs.values())
