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
import time
from typing import Any, Callable, Iterable, Iterator, Sequence

from ..corpus import Document
from ..errors import BackendError, ConfigError
from .base import BulkResult, Neighbour
from .connection import RETRY_STATUS, Connection, ConnectionConfig, body, has_analyzer
from .mappings import FALLBACK, MAIN, load_mapping
from .query import DEFAULT_MAX_TERMS, query_text

log = logging.getLogger(__name__)

SEARCH_FIELD = "title_text"  # title and text copied into one analysed field


class ElasticBackend:
    """An Elasticsearch 8.x or OpenSearch 2.x index (see the module docstring)."""

    def __init__(self, index: str, config: ConnectionConfig, kind: str = "elasticsearch", *,
                 max_query_terms: int = DEFAULT_MAX_TERMS) -> None:
        if not index or index != index.lower() or any(c in index for c in ' "*\\<|,>/?#:'):
            raise ConfigError(f"invalid index name {index!r} (lowercase, no spaces or special characters)")
        self.index = index
        self.kind = kind
        self.name = kind
        self.max_query_terms = max_query_terms
        self.conn = Connection(config, kind)
        self.conn.check_version()
        self.mapping_name: str | None = None
        self._es = kind == "elasticsearch"

    # -- lifecycle -------------------------------------------------------------------------------
    def exists(self) -> bool:
        """Whether the index exists on the server."""
        return bool(self.conn.call("check index", lambda: self.conn.client.indices.exists(index=self.index)))

    def create(self, *, overwrite: bool = False) -> None:
        """Create the index from the mapping files (or open it when it exists; ``overwrite`` recreates it)."""
        if self.exists():
            if not overwrite:
                self.open()
                return
            self.conn.call("delete index", lambda: self.conn.client.indices.delete(index=self.index))
        name = MAIN if self.has_analyzer("english") else FALLBACK
        if name == FALLBACK:
            log.warning("%s %s has no 'english' analyzer (analysis-common module missing): index '%s' uses the "
                        "'standard' analyzer without stemming (mappings/%s.json)", self.kind, self.conn.version,
                        self.index, FALLBACK)
        mapping = load_mapping(name)
        c = self.conn.client
        if self._es:
            fn = lambda: c.indices.create(index=self.index, settings=mapping["settings"],  # noqa: E731
                                          mappings=mapping["mappings"])
        else:
            fn = lambda: c.indices.create(index=self.index, body=mapping)  # noqa: E731
        self.conn.call(f"create index '{self.index}'", fn)
        self.mapping_name = name

    def open(self) -> None:
        """Check that the index exists and note which mapping it was created from."""
        if not self.exists():
            raise BackendError(f"index '{self.index}' does not exist on {self.conn.config.url} (run esrank load)")
        resp = body(self.conn.call("read mapping", lambda: self.conn.client.indices.get_mapping(index=self.index)))
        first: dict[str, Any] = next(iter(resp.values()), {})
        meta = first.get("mappings", {}).get("_meta", {})
        self.mapping_name = meta.get("esrank_mapping")
        if self.mapping_name is None:
            log.warning("index '%s' was not created by esrank: its analyzers and BM25 settings may differ",
                        self.index)

    def has_analyzer(self, analyzer: str) -> bool:
        """Whether the server knows a built-in analyzer (via ``_analyze``)."""
        return has_analyzer(self.conn, analyzer)

    def close(self) -> None:
        """Close the client's connections."""
        self.conn.client.close()

    # -- reading ---------------------------------------------------------------------------------
    def count(self) -> int:
        """Number of documents in the index (after a refresh)."""
        c = self.conn.client
        self.conn.call("refresh", lambda: c.indices.refresh(index=self.index))
        return int(body(self.conn.call("count", lambda: c.count(index=self.index)))["count"])

    def ids_present(self, ids: Sequence[str]) -> set[str]:
        """Which of these ids the index holds (``_mget`` without sources, 1000 ids a request)."""
        found: set[str] = set()
        c = self.conn.client
        for start in range(0, len(ids), 1000):
            chunk = list(ids[start:start + 1000])
            if self._es:
                fn = lambda: c.mget(index=self.index, ids=chunk, source=False)  # noqa: E731
            else:
                fn = lambda: c.mget(index=self.index, body={"ids": chunk}, _source="false")  # noqa: E731
            resp = body(self.conn.call("look up ids", fn))
            found.update(d["_id"] for d in resp["docs"] if d.get("found"))
        return found

    def iter_documents(self, batch_size: int = 1000) -> Iterator[Document]:
        """Every stored document, paged by ``search_after`` on ``_id`` order (``id`` keyword field)."""
        c = self.conn.client
        after: list[Any] | None = None
        while True:
            req: dict[str, Any] = {"query": {"match_all": {}}, "size": batch_size, "sort": [{"id": "asc"}],
                                   "_source": ["title", "text", "keyphrases"], "track_total_hits": False}
            if after is not None:
                req["search_after"] = after
            fn = (lambda: c.search(index=self.index, **req)) if self._es else (  # noqa: E731
                lambda: c.search(index=self.index, body=req))
            hits = body(self.conn.call("read documents", fn))["hits"]["hits"]
            for h in hits:
                src = h.get("_source", {})
                yield Document(h["_id"], src.get("title") or "", src.get("text") or "", list(src.get("keyphrases") or ()))
            if len(hits) < batch_size:
                return
            after = hits[-1]["sort"]

    def neighbours(self, documents: Sequence[Document], k: int = 5,
                   exclude_ids: Sequence[set[str]] | None = None) -> list[list[Neighbour]]:
        """The k best BM25 matches of each document, in one ``_msearch`` request per call."""
        if exclude_ids is not None and len(exclude_ids) != len(documents):
            raise ValueError("exclude_ids must have one set per document")
        out: list[list[Neighbour]] = [[] for _ in documents]
        lines: list[dict[str, Any]] = []
        asked: list[int] = []
        for i, doc in enumerate(documents):
            text = query_text(doc, self.max_query_terms)
            if not text or k <= 0:
                continue
            query: dict[str, Any] = {"match": {SEARCH_FIELD: {"query": text}}}
            if exclude_ids and exclude_ids[i]:
                query = {"bool": {"must": query, "must_not": {"ids": {"values": sorted(exclude_ids[i])}}}}
            lines.append({"index": self.index})
            lines.append({"query": query, "size": k, "_source": ["keyphrases"], "track_total_hits": False})
            asked.append(i)
        if not asked:
            return out
        c = self.conn.client
        fn = (lambda: c.msearch(searches=lines)) if self._es else (lambda: c.msearch(body=lines))
        resp = body(self.conn.call("search neighbours", fn))
        for i, r in zip(asked, resp["responses"]):
            if "error" in r:
                err = r["error"]
                reason = (err.get("root_cause") or [err])[0].get("reason", str(err)) if isinstance(err, dict) else err
                raise BackendError(self.conn.redact(f"neighbour search for document '{documents[i].id}' failed: "
                                                    f"{reason}"))
            for rank, hit in enumerate(r["hits"]["hits"], 1):
                kps = hit.get("_source", {}).get("keyphrases") or []
                out[i].append(Neighbour(hit["_id"], rank, float(hit["_score"]), tuple(kps)))
        return out

    # -- writing ---------------------------------------------------------------------------------
    def bulk_add(self, documents: Iterable[Document], *, batch_size: int = 500,
                 on_failure: Callable[[Document, str], None] | None = None) -> BulkResult:
        """Index documents in chunks (``_id`` = document id, so a reload replaces and never duplicates)."""
        result = BulkResult()
        chunk: list[Document] = []
        for doc in documents:
            chunk.append(doc)
            if len(chunk) >= batch_size:
                self._send(chunk, result, on_failure)
                chunk = []
        if chunk:
            self._send(chunk, result, on_failure)
        c = self.conn.client
        self.conn.call("refresh", lambda: c.indices.refresh(index=self.index))
        return result

    def _send(self, docs: list[Document], result: BulkResult,
              on_failure: Callable[[Document, str], None] | None) -> None:
        """One chunk: retry retryable items with backoff; report the rest."""
        pending = docs
        attempt = 0
        c = self.conn.client
        while pending:
            ops: list[dict[str, Any]] = []
            for d in pending:
                ops.append({"index": {"_index": self.index, "_id": d.id}})
                ops.append({"id": d.id, "title": d.title, "text": d.text, "keyphrases": list(d.keyphrases)})
            fn = (lambda: c.bulk(operations=ops)) if self._es else (lambda: c.bulk(body=ops))
            retries_before = self.conn.retries
            try:
                resp = body(self.conn.call(f"bulk load into '{self.index}'", fn))
            except BackendError as e:
                raise BackendError(f"{e.reason}; {result.indexed} documents were indexed so far; run the same "
                                   "command with --resume once the server is back") from None
            resent = self.conn.retries - retries_before  # a lost attempt may have been indexed already
            result.retried += resent
            retry: list[Document] = []
            for d, item in zip(pending, resp["items"]):
                info = item.get("index") or next(iter(item.values()))
                status = int(info.get("status", 0))
                if 200 <= status < 300:
                    result.indexed += 1
                    if info.get("result") == "created":
                        result.created += 1
                    elif resent:
                        result.maybe_created += 1
                elif status in RETRY_STATUS and attempt < self.conn.config.max_retries:
                    retry.append(d)
                else:
                    err = info.get("error", {})
                    reason = f"{err.get('type', 'error')}: {err.get('reason', '')}" if isinstance(err, dict) \
                        else str(err)
                    reason = " ".join(self.conn.redact(f"HTTP {status} {reason}").split())
                    reason = reason if len(reason) <= 300 else reason[:297] + "..."
                    result.failed.append((d.id, reason))
                    if on_failure is not None:
                        on_failure(d, reason)
            if retry:
                result.retried += len(retry)
                time.sleep(self.conn.delay(attempt))
                attempt += 1
            pending = retry
