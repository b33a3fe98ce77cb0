"""The Elasticsearch / OpenSearch backend: one index of training documents, BM25 over title + text.

Settings and mappings come from ``mappings/documents.json`` (English analyzer with stemming). When the
server has no ``english`` analyzer (distributions without the analysis-common module), the index is
created from ``mappings/documents.standard.json`` instead and a one-line warning says so.

Bulk loading sends chunks through the ``_bulk`` API itself rather than the clients' ``streaming_bulk``
helpers, because those retry only HTTP 429 items: here items answered 429/502/503/504 and whole
requests lost to connection errors are retried with capped exponential backoff; other item errors are
reported (id + reason) and never stop later chunks.
"""
from __future__ import annotations

import logging
import re
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from ..corpus import Document
from ..errors import BackendError, ConfigError
from .base import Backend, BulkResult, KeyphraseFrequencies, Neighbour
from .cluster import Cluster, ConnectionConfig, check_index_name
from .mappings import FALLBACK, MAIN, load_mapping
from .query import DEFAULT_MAX_TERMS, bm25_idf, query_text, top_terms

log = logging.getLogger(__name__)

SEARCH_FIELD = "title_text"  # title and text copied into one analysed field


class ElasticBackend(Backend):
    """An Elasticsearch 8.x or OpenSearch 2.x index (see the module docstring)."""

    def __init__(self, index: str, config: ConnectionConfig | Cluster, kind: str = "elasticsearch", *,
                 max_query_terms: int = DEFAULT_MAX_TERMS) -> None:
        self.index = check_index_name(index)
        self.kind = config.kind if isinstance(config, Cluster) else kind
        self.name = self.kind
        self.max_query_terms = max_query_terms
        self.cluster = config if isinstance(config, Cluster) else Cluster.connect(config, kind)
        self.mapping_name: str | None = None
        self._frequencies: KeyphraseFrequencies | None = None  # counted once; reset when this backend writes

    def __enter__(self) -> "ElasticBackend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- lifecycle -------------------------------------------------------------------------------
    def exists(self) -> bool:
        """Whether the index (or alias) exists on the server."""
        return self.cluster.index_exists(self.index)

    def create(self, *, overwrite: bool = False) -> None:
        """Create the index from the mapping files (or open it when it exists; ``overwrite`` recreates it)."""
        if self.exists():
            if not overwrite:
                self.open()
                return
            behind = self.cluster.alias_indices(self.index)
            for name in behind or [self.index]:
                self.cluster.delete_index(name)
        self._create(self.index)

    def _create(self, index: str, aliases: dict[str, Any] | None = None) -> None:
        name = MAIN if self.has_analyzer("english") else FALLBACK
        if name == FALLBACK:
            log.warning("%s %s has no 'english' analyzer (analysis-common module missing): index '%s' uses the "
                        "'standard' analyzer without stemming (mappings/%s.json)", self.kind, self.cluster.version,
                        index, FALLBACK)
        mapping = load_mapping(name)
        self.cluster.create_index(index, mapping["settings"], mapping["mappings"], aliases)
        self.mapping_name = name

    def open(self) -> None:
        """Check that the index exists and note which mapping it was created from."""
        if not self.exists():
            raise BackendError(f"index '{self.index}' does not exist on {self.cluster.config.url} (run esrank load)")
        resp = self.cluster.get_mappings(self.index)
        first: dict[str, Any] = next(iter(resp.values()), {})
        meta = first.get("_meta", {})
        self.mapping_name = meta.get("esrank_mapping")
        if self.mapping_name is None:
            log.warning("index '%s' was not created by esrank: its analyzers and BM25 settings may differ",
                        self.index)

    def has_analyzer(self, analyzer: str) -> bool:
        """Whether the server knows a built-in analyzer (via ``_analyze``)."""
        return self.cluster.has_analyzer(analyzer)

    def close(self) -> None:
        """Close the client's connections."""
        self.cluster.close()

    # -- aliases ---------------------------------------------------------------------------------
    def begin_alias_load(self, *, resume: bool = False, overwrite: bool = False) -> str:
        """Point this backend at a new concrete index ``ALIAS-<timestamp>`` (``self.index`` is the alias);
        with ``resume``, at the newest such index not yet behind the alias. Returns the concrete name."""
        alias = self.alias = self.index
        if self.exists() and not self.cluster.is_alias(alias) and not overwrite:
            raise ConfigError(f"'{alias}' is an index, not an alias: --alias needs the name free or an alias "
                              "(--overwrite replaces the index by the alias once the load is complete)")
        behind = set(self.cluster.alias_indices(alias))
        if resume:
            pending = [i for i in self.cluster.indices(f"{alias}-*") if i not in behind and _is_load(alias, i)]
            if pending:
                self.index = pending[-1]
                self.open()
                return self.index
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S%f")[:-3]
        self.index = f"{alias}-{stamp}"
        self._create(self.index)
        return self.index

    def finish_alias_load(self, *, keep_old: bool = False) -> list[str]:
        """Switch the alias to the loaded index in one atomic request; delete the indices it pointed to
        (unless ``keep_old``). Returns the indices the alias left."""
        alias, index = self.alias, self.index
        old = [i for i in self.cluster.alias_indices(alias) if i != index]
        actions: list[dict[str, Any]] = [{"add": {"index": index, "alias": alias, "is_write_index": True}}]
        if self.cluster.index_exists(alias) and not self.cluster.is_alias(alias):
            actions.insert(0, {"remove_index": {"index": alias}})  # --overwrite of a plain index
        actions += [{"remove": {"index": i, "alias": alias}} for i in old]
        self.cluster.update_aliases(actions)
        if not keep_old:
            for i in old:
                self.cluster.delete_index(i)
        self.index = alias
        return old

    # -- reading ---------------------------------------------------------------------------------
    def count(self) -> int:
        """Number of documents in the index (after a refresh)."""
        self.cluster.refresh(self.index)
        return self.cluster.count(self.index, what="count")

    def ids_present(self, ids: Sequence[str]) -> set[str]:
        """Which of these ids the index holds (``_mget`` without sources, 1000 ids a request)."""
        found: set[str] = set()
        for start in range(0, len(ids), 1000):
            docs = self.cluster.mget([(self.index, i) for i in ids[start:start + 1000]], source=False,
                                     what="look up ids")
            found.update(d["_id"] for d in docs if d.get("found"))
        return found

    def iter_documents(self, batch_size: int = 1000) -> Iterator[Document]:
        """Every stored document, paged by ``search_after`` on ``_id`` order (``id`` keyword field)."""
        after: list[Any] | None = None
        while True:
            req: dict[str, Any] = {"query": {"match_all": {}}, "size": batch_size, "sort": [{"id": "asc"}],
                                   "_source": ["title", "text", "keyphrases"], "track_total_hits": False}
            if after is not None:
                req["search_after"] = after
            hits = self.cluster.search(self.index, req, what="read documents")["hits"]["hits"]
            for h in hits:
                src = h.get("_source", {})
                yield Document(h["_id"], src.get("title") or "", src.get("text") or "", list(src.get("keyphrases") or ()))
            if len(hits) < batch_size:
                return
            after = hits[-1]["sort"]

    def keyphrase_frequencies(self) -> KeyphraseFrequencies:
        """How many documents carry each keyphrase: a composite terms aggregation over the ``keyphrases`` keyword
        field, paged 10,000 phrases a request, merged by stemmed key (kept until the backend is closed)."""
        if self._frequencies is None:
            from ..text import stemmed_key

            counts: dict[str, int] = {}
            after: dict[str, Any] | None = None
            while True:
                comp: dict[str, Any] = {"size": 10_000, "sources": [{"p": {"terms": {"field": "keyphrases"}}}]}
                if after is not None:
                    comp["after"] = after
                res = self.cluster.search(self.index, {"size": 0, "track_total_hits": True,
                                                       "aggs": {"kp": {"composite": comp}}},
                                          what="count keyphrases")
                agg = res["aggregations"]["kp"]
                for bucket in agg["buckets"]:
                    key = stemmed_key(bucket["key"]["p"])
                    if key:
                        counts[key] = counts.get(key, 0) + int(bucket["doc_count"])
                total = res["hits"]["total"]
                documents = int(total["value"] if isinstance(total, dict) else total)
                after = agg.get("after_key")
                if not agg["buckets"] or after is None:
                    break
            self._frequencies = KeyphraseFrequencies(documents, counts)
        return self._frequencies

    def neighbours(self, documents: Sequence[Document], k: int = 5,
                   exclude_ids: Sequence[set[str]] | None = None) -> list[list[Neighbour]]:
        """The k best BM25 matches of each document, in one ``_msearch`` request per call."""
        if exclude_ids is not None and len(exclude_ids) != len(documents):
            raise ValueError("exclude_ids must have one set per document")
        out: list[list[Neighbour]] = [[] for _ in documents]
        lines: list[tuple[str, dict[str, Any]]] = []
        asked: list[int] = []
        weighted = self.query_terms(documents) if k > 0 else [{} for _ in documents]
        for i, terms in enumerate(weighted):
            if not terms:
                continue
            query: dict[str, Any] = {"bool": {"should": [
                {"term": {SEARCH_FIELD: {"value": t, "boost": tf}}} for t, tf in terms.items()]}}
            if exclude_ids and exclude_ids[i]:
                query["bool"]["must_not"] = {"ids": {"values": sorted(exclude_ids[i])}}
            lines.append((self.index, {"query": query, "size": k, "_source": ["keyphrases"],
                                       "track_total_hits": False}))
            asked.append(i)
        if not asked:
            return out
        responses = self.cluster.msearch(lines, what="search neighbours")
        for i, r in zip(asked, responses):
            if "error" in r:
                err = r["error"]
                reason = (err.get("root_cause") or [err])[0].get("reason", str(err)) if isinstance(err, dict) else err
                raise BackendError(self.cluster.redact(f"neighbour search for document '{documents[i].id}' failed: "
                                                    f"{reason}"))
            for rank, hit in enumerate(r["hits"]["hits"], 1):
                kps = hit.get("_source", {}).get("keyphrases") or []
                out[i].append(Neighbour(hit["_id"], rank, float(hit["_score"]), tuple(kps)))
        return out

    def query_terms(self, documents: Sequence[Document]) -> list[dict[str, int]]:
        """Each document's analysed terms (the index's own analyser, via ``_mtermvectors`` on an artificial
        document) with their frequencies, at most ``max_query_terms`` (highest tf·idf with the index's idf)."""
        if not documents:
            return []
        docs = [{"_index": self.index, "doc": {SEARCH_FIELD: query_text(d)}, "fields": [SEARCH_FIELD],
                 "term_statistics": True, "field_statistics": True, "positions": False, "offsets": False,
                 "payloads": False} for d in documents]
        resp = self.cluster.mtermvectors(self.index, docs, what="analyse query documents")
        out: list[dict[str, int]] = []
        for d, r in zip(documents, resp):
            if "error" in r:
                raise BackendError(self.cluster.redact(f"analysing document '{d.id}' as a query failed: {r['error']}"))
            field = (r.get("term_vectors") or {}).get(SEARCH_FIELD) or {}
            n_docs = float((field.get("field_statistics") or {}).get("doc_count", 0))
            known = [(t, int(v["term_freq"]), float(v.get("doc_freq", 0)))
                     for t, v in (field.get("terms") or {}).items() if v.get("doc_freq", 0) > 0]
            if not known:
                out.append({})
                continue
            terms = [t for t, _, _ in known]
            tf = np.array([f for _, f, _ in known], dtype=np.int64)
            idf = np.asarray(bm25_idf(n_docs, np.array([df for _, _, df in known])))
            keep = top_terms(terms, tf, idf, self.max_query_terms)
            out.append({terms[j]: int(tf[j]) for j in keep})
        return out

    # -- writing ---------------------------------------------------------------------------------
    def bulk_add(self, documents: Iterable[Document], *, batch_size: int = 500,
                 on_failure: Callable[[Document, str], None] | None = None) -> BulkResult:
        """Index documents in chunks (``_id`` = document id, so a reload replaces and never duplicates)."""
        result = BulkResult()
        self._frequencies = None
        chunk: list[Document] = []
        for doc in documents:
            chunk.append(doc)
            if len(chunk) >= batch_size:
                self._send(chunk, result, on_failure)
                chunk = []
        if chunk:
            self._send(chunk, result, on_failure)
        self.cluster.refresh(self.index)
        return result

    def _send(self, docs: list[Document], result: BulkResult,
              on_failure: Callable[[Document, str], None] | None) -> None:
        """One chunk (retryable items are retried by the cluster); report the failed items."""
        actions = [({"index": {"_index": self.index, "_id": d.id}},
                    {"id": d.id, "title": d.title, "text": d.text, "keyphrases": list(d.keyphrases)}) for d in docs]
        try:
            outcome = self.cluster.bulk(actions, what=f"bulk load into '{self.index}'")
        except BackendError as e:
            raise BackendError(f"{e.reason}; {result.indexed} documents were indexed so far; run the same "
                               "command with --resume once the server is back") from None
        result.retried += outcome.retried
        for d, info, resent in zip(docs, outcome.items, outcome.resent):
            status = int(info.get("status", 0))
            if 200 <= status < 300:
                result.indexed += 1
                if info.get("result") == "created":
                    result.created += 1
                elif resent:  # a lost attempt may have been indexed already
                    result.maybe_created += 1
            else:
                reason = self.cluster.item_error(info)
                result.failed.append((d.id, reason))
                if on_failure is not None:
                    on_failure(d, reason)


def _is_load(alias: str, index: str) -> bool:
    """Whether ``index`` is named like a concrete index of an aliased load (``ALIAS-<timestamp>``)."""
    return re.fullmatch(re.escape(alias) + r"-\d{17}", index) is not None
