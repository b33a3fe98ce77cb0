"""The same whole-document query on the embedded index and on the servers gives the same neighbours.

Like is compared with like. OpenSearch (its test distribution has analysis-common) uses the ``english``
analyzer (Porter stemming), as does the default embedded index. The Elasticsearch integration-test
distribution has no ``english`` analyzer, so its index uses the documented ``standard`` fallback (no stemming);
it is compared with an embedded index configured without stemming (``"stemmer": "none"`` in a copy of
``mappings/embedded.json``). What still differs is where the analysers disagree: Lucene's tokenizer keeps
one-letter tokens and words such as ``don't`` whole, the ``english`` analyzer's possessive filter, and Lucene's
lossy one-byte document lengths, which can swap near-tied neighbours. The test measures the agreement on the
90 sample documents: for every document whose query terms (analysed terms and frequencies) are the same on
both sides, the clear best neighbour must be the same and the top-5 sets must overlap at least 95%.
"""
from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest

from esrank.corpus import read_documents, sample_corpus_path
from esrank.retrieval.factory import BackendOptions, open_backend
from esrank.retrieval.mappings import mappings_dir

K = 5


Run = dict[str, tuple[dict[str, int], list[tuple[str, float]]]]  # id → (query terms, neighbours (id, score))


def _run(options: BackendOptions) -> Run:
    docs = list(read_documents(sample_corpus_path()))
    backend = open_backend(options, create=True)
    try:
        backend.bulk_add(docs)
        found = backend.neighbours(docs, K, [{d.id} for d in docs])
        if hasattr(backend, "cluster"):
            terms = backend.query_terms(docs)  # type: ignore[attr-defined]
            backend.cluster.delete_index(options.index)  # type: ignore[attr-defined]
        else:
            names = backend._analyzer.term_names()  # type: ignore[attr-defined]
            terms = [{names[i]: int(f) for i, f in zip(*backend.query(d))} for d in docs]  # type: ignore[attr-defined]
    finally:
        backend.close()
    return {d.id: (t, [(n.id, n.score) for n in ns]) for d, t, ns in zip(docs, terms, found)}


def _check(embedded: Run, server: Run) -> None:
    """Where both analysers produce the same query terms, the neighbours are the same (near ties aside)."""
    same_terms = [i for i in embedded if embedded[i][0] == server[i][0]]
    assert len(same_terms) >= 30, len(same_terms)  # the rest differ by numbers and one-letter tokens
    overlap = 0.0
    for i in same_terms:
        ours, theirs = embedded[i][1], server[i][1]
        overlap += len({n for n, _ in ours} & {n for n, _ in theirs}) / K
        if ours[0][1] > 1.02 * ours[1][1]:  # a clear best neighbour (Lucene's lossy lengths move scores ~1%)
            assert ours[0][0] == theirs[0][0], (i, ours, theirs)
    assert overlap / len(same_terms) >= 0.95
    top1 = sum(embedded[i][1][0][0] == server[i][1][0][0] for i in embedded) / len(embedded)
    assert top1 >= 0.9  # over all documents, analyser differences included


def _embedded(tmp_path: Path, stemmer: str, monkeypatch: pytest.MonkeyPatch) -> Run:
    if stemmer != "porter":
        conf_dir = tmp_path / "mappings"
        shutil.copytree(mappings_dir(), conf_dir)
        conf = json.loads((conf_dir / "embedded.json").read_text())
        conf["analysis"]["stemmer"] = stemmer
        (conf_dir / "embedded.json").write_text(json.dumps(conf))
        monkeypatch.setenv("ESRANK_MAPPINGS_DIR", str(conf_dir))
    try:
        return _run(BackendOptions("sample", backend="embedded", path=tmp_path / f"emb-{stemmer}"))
    finally:
        monkeypatch.delenv("ESRANK_MAPPINGS_DIR", raising=False)


@pytest.mark.server
def test_opensearch_english_and_embedded_porter_agree(os_server, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    embedded = _embedded(tmp_path, "porter", monkeypatch)
    _check(embedded, _run(BackendOptions.server(f"agree-{uuid.uuid4().hex[:8]}", os_server.url, backend="opensearch")))


@pytest.mark.server
def test_elasticsearch_standard_and_embedded_unstemmed_agree(es_server, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    embedded = _embedded(tmp_path, "none", monkeypatch)
    _check(embedded, _run(BackendOptions.server(f"agree-{uuid.uuid4().hex[:8]}", es_server.url,
                                                backend="elasticsearch")))
