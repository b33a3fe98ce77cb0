"""``esrank enrich --follow`` on real servers: documents indexed while the worker runs all get keyphrases, a
SIGTERM stops it cleanly, and a SIGKILL + restart loses no document and writes none twice (each document's
``_version`` is 2: indexed once, enriched once)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from clusters import SAMPLE, Cluster, cluster, get  # noqa: F401 - the fixture is shared

SCRIPT = "import sys; from esrank.commands import main; sys.argv[0] = 'esrank'; main()"


def _target(cluster: Cluster, n: int, start: int = 0, index: str | None = None) -> str:  # noqa: F811
    """An index of ``n`` copies of sample documents (title + abstract, no keyphrases), each written once."""
    index = index or cluster.name("follow")
    ops: list[dict[str, Any]] = []
    for i in range(start, start + n):
        d = SAMPLE[i % len(SAMPLE)]
        ops += [{"index": {"_index": index, "_id": f"doc-{i:04d}"}}, {"title": d.title, "abstract": d.text}]
    resp = get(cluster.client.bulk(body=ops, params={"refresh": "true"}) if cluster.kind == "opensearch"
               else cluster.client.bulk(operations=ops, refresh=True))
    assert not resp["errors"]
    return index


def _start(cluster: Cluster, training: str, target: str, tmp: Path, *extra: str) -> subprocess.Popen[bytes]:  # noqa: F811
    args = ["enrich", "--url", cluster.url, "--index", training, "--target-index", target, "--method", "vote",
            "--no-carbon", "--follow", "--poll-interval", "0.3", "--batch-size", "4",
            "--checkpoint", str(tmp / "follow.json"), *extra]
    return subprocess.Popen([sys.executable, "-c", SCRIPT, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"}, start_new_session=True)


def _versions(cluster: Cluster, index: str) -> dict[str, tuple[int, bool]]:  # noqa: F811
    return {i: (int(h["_version"]), "esrank" in h["_source"]) for i, h in cluster.docs(index).items()}


def _wait(cond: Any, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert proc.poll() is None, proc.communicate()[1].decode()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_follow_enriches_new_documents_and_stops_on_sigterm(cluster: Cluster, tmp_path: Path) -> None:  # noqa: F811
    training = cluster.load_sample()
    target = _target(cluster, 20)
    proc = _start(cluster, training, target, tmp_path)
    try:
        _wait(lambda: sum(e for _, e in _versions(cluster, target).values()) == 20, proc)
        _target(cluster, 25, start=20, index=target)  # documents arriving while the worker runs
        _wait(lambda: sum(e for _, e in _versions(cluster, target).values()) == 45, proc)
        time.sleep(1.0)  # a few idle rounds: nothing is written again
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert "follow: SIGTERM: stopping" in err.decode() and "follow stopped after" in err.decode()
    versions = _versions(cluster, target)
    assert len(versions) == 45 and all(v == (2, True) for v in versions.values()), versions
    state = json.loads((tmp_path / "follow.json").read_text())
    assert state["enriched"] == 45 and state["target_index"] == target and state["rounds"] >= 2


def test_follow_survives_sigkill_without_loss_or_double_writes(cluster: Cluster, tmp_path: Path) -> None:  # noqa: F811
    training = cluster.load_sample()
    target = _target(cluster, 120)
    proc = _start(cluster, training, target, tmp_path, "--rate", "40")
    try:
        _wait(lambda: sum(e for _, e in _versions(cluster, target).values()) >= 20, proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    time.sleep(1.5)  # a bulk request in flight when the process died is still applied by the server
    done = sum(e for _, e in _versions(cluster, target).values())
    assert 20 <= done < 120
    _target(cluster, 10, start=120, index=target)  # more arrive while no worker runs
    proc = _start(cluster, training, target, tmp_path)
    try:
        _wait(lambda: sum(e for _, e in _versions(cluster, target).values()) == 130, proc)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    versions = _versions(cluster, target)
    assert len(versions) == 130 and all(v == (2, True) for v in versions.values()), \
        {i: v for i, v in versions.items() if v != (2, True)}


def test_follow_enriches_a_changed_document_again(cluster: Cluster, tmp_path: Path) -> None:  # noqa: F811
    training = cluster.load_sample()
    target = _target(cluster, 8)
    proc = _start(cluster, training, target, tmp_path, "--recheck-interval", "0.5")
    try:
        _wait(lambda: sum(e for _, e in _versions(cluster, target).values()) == 8, proc)
        before = cluster.source(target, "doc-0003")["_source"]["esrank"]
        body = {"doc": {"title": "Gene expression of yeast under stress"}}
        (cluster.client.update(index=target, id="doc-0003", body=body) if cluster.kind == "opensearch"
         else cluster.client.update(index=target, id="doc-0003", doc=body["doc"]))
        _wait(lambda: cluster.source(target, "doc-0003")["_source"]["esrank"]["source_hash"]
              != before["source_hash"], proc)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=60)
    versions = _versions(cluster, target)
    assert versions["doc-0003"] == (4, True)  # indexed, enriched, changed, enriched again
    assert all(v == (2, True) for i, v in versions.items() if i != "doc-0003")
