"""How often the embedded index and the servers return the same neighbours on the 90-document sample corpus.

Like is compared with like, as in tests/retrieval/test_query_agreement.py: OpenSearch (``english`` analyzer)
against the default embedded index (Porter), and Elasticsearch (the integration-test build has no ``english``
analyzer: the ``standard`` fallback) against an embedded index without stemming. Prints, per pair: documents whose
query terms are identical on both sides, top-k overlap on those and on all documents, top-1 agreement.

    python3 bench/bench_backend_agreement.py            # starts both test servers (tests/servers.py)
    ESRANK_TEST_ES_URL=http://localhost:9200 ESRANK_TEST_OS_URL=http://localhost:9201 python3 bench/...

Needs Java and the integration-test zips (fetched once into ~/.cache/esrank) unless the URLs are given.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from esrank.corpus import read_documents, sample_corpus_path  # noqa: E402
from esrank.retrieval.factory import BackendOptions, open_backend  # noqa: E402
from esrank.retrieval.mappings import mappings_dir  # noqa: E402

Run = dict[str, tuple[dict[str, int], list[str]]]  # id → (query terms, neighbour ids)


def run(options: BackendOptions, k: int) -> Run:
    """Index the sample corpus and retrieve each document's k neighbours (itself excluded) and query terms."""
    docs = list(read_documents(sample_corpus_path()))
    backend = open_backend(options, create=True, overwrite=True)
    try:
        backend.bulk_add(docs)
        found = backend.neighbours(docs, k, [{d.id} for d in docs])
        if hasattr(backend, "cluster"):
            terms = backend.query_terms(docs)  # type: ignore[attr-defined]
            backend.cluster.delete_index(options.index)
        else:
            names = backend._analyzer.term_names()  # type: ignore[attr-defined]
            terms = [{names[i]: int(f) for i, f in zip(*backend.query(d))} for d in docs]  # type: ignore[attr-defined]
    finally:
        backend.close()
    return {d.id: (t, [n.id for n in ns]) for d, t, ns in zip(docs, terms, found)}


def embedded(tmp: Path, stemmer: str, k: int) -> Run:
    """The embedded index with the given stemmer (porter = the default mappings/embedded.json)."""
    if stemmer != "porter":
        conf_dir = tmp / f"mappings-{stemmer}"
        shutil.copytree(mappings_dir(), conf_dir)
        conf = json.loads((conf_dir / "embedded.json").read_text())
        conf["analysis"]["stemmer"] = stemmer
        (conf_dir / "embedded.json").write_text(json.dumps(conf))
        os.environ["ESRANK_MAPPINGS_DIR"] = str(conf_dir)
    try:
        return run(BackendOptions("sample", backend="embedded", path=tmp / f"emb-{stemmer}"), k)
    finally:
        os.environ.pop("ESRANK_MAPPINGS_DIR", None)


def compare(ours: Run, theirs: Run, k: int) -> dict[str, Any]:
    """Identical-query documents, overlap@k (on those and on all), top-1 agreement."""
    same = [i for i in ours if ours[i][0] == theirs[i][0]]

    def overlap(ids: list[str]) -> float:
        return sum(len(set(ours[i][1]) & set(theirs[i][1])) / k for i in ids) / max(len(ids), 1)

    return {"documents": len(ours), "identical_queries": len(same), f"overlap@{k}_identical": overlap(same),
            f"overlap@{k}_all": overlap(list(ours)),
            "top1_all": sum(ours[i][1][:1] == theirs[i][1][:1] for i in ours) / len(ours)}


def server_url(kind: str, started: list[Any]) -> str:
    """The URL of a running server of this kind: from the environment, else one started from tests/servers.py."""
    env = "ESRANK_TEST_ES_URL" if kind == "elasticsearch" else "ESRANK_TEST_OS_URL"
    if os.environ.get(env):
        return os.environ[env].rstrip("/")
    from servers import ELASTICSEARCH, OPENSEARCH, Server  # type: ignore[import-not-found]

    server = Server(ELASTICSEARCH if kind == "elasticsearch" else OPENSEARCH).start()
    started.append(server)
    return str(server.url)


def main() -> None:
    """Print the agreement of each server with the matching embedded index."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-k", type=int, default=5)
    args = ap.parse_args()
    started: list[Any] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for kind, stemmer, analyzer in (("opensearch", "porter", "english"),
                                            ("elasticsearch", "none", "standard fallback")):
                url = server_url(kind, started)
                theirs = run(BackendOptions.server(f"agree-{uuid.uuid4().hex[:8]}", url, backend=kind), args.k)
                ours = embedded(Path(tmp), stemmer, args.k)
                r = compare(ours, theirs, args.k)
                print(f"{kind} ({analyzer}) vs embedded (stemmer {stemmer}): identical queries "
                      f"{r['identical_queries']}/{r['documents']}; overlap@{args.k} on those "
                      f"{r[f'overlap@{args.k}_identical']:.3f}, on all {r[f'overlap@{args.k}_all']:.3f}; "
                      f"top-1 agreement {r['top1_all']:.3f}")
    finally:
        for s in started:
            s.cleanup()


if __name__ == "__main__":
    main()
