"""Open a backend from options: no URL → the embedded bm25s index; a URL → Elasticsearch or OpenSearch."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .base import Backend
from .cluster import Cluster, ConnectionConfig, detect_kind
from .query import DEFAULT_MAX_TERMS, DEFAULT_POSTINGS_BUDGET

BACKENDS = ("auto", "embedded", "elasticsearch", "opensearch")


@dataclass
class BackendOptions:
    """Everything needed to open an index: its name, the backend kind, and where it lives (a server
    ``connection`` or an embedded ``path``). Secrets stay inside ``ConnectionConfig``, out of ``repr``."""

    index: str
    backend: str = "auto"
    connection: ConnectionConfig | None = None
    path: str | Path | None = None
    max_query_terms: int = DEFAULT_MAX_TERMS
    postings_budget: int | None = DEFAULT_POSTINGS_BUDGET  # embedded index: postings a query scores at most

    @classmethod
    def server(cls, index: str, url: str, *, backend: str = "auto", max_query_terms: int = DEFAULT_MAX_TERMS,
               **connection: Any) -> "BackendOptions":
        """Options for an index on the server at ``url`` (``connection``: ``ConnectionConfig`` fields)."""
        return cls(index, backend, ConnectionConfig(url, **connection), max_query_terms=max_query_terms)

    @property
    def url(self) -> str | None:
        """The server URL (credentials removed), or None for the embedded backend."""
        return self.connection.url if self.connection is not None else None


def resolve_kind(options: BackendOptions) -> str:
    """The backend kind the options ask for (``auto``: embedded without a URL, else detected from the server)."""
    kind = (options.backend or "auto").lower()
    if kind not in BACKENDS:
        raise ConfigError(f"unknown backend {kind!r}; choose one of {', '.join(BACKENDS)}")
    if kind == "embedded" and options.url:
        raise ConfigError("--backend embedded does not take --url (it is a local index; see --path)")
    if kind in ("elasticsearch", "opensearch") and not options.url:
        raise ConfigError(f"--backend {kind} needs --url (or ESRANK_URL)")
    if options.path is not None and options.url:
        raise ConfigError("--path is for the embedded backend and cannot be combined with --url")
    if kind == "auto":
        if options.connection is None:
            return "embedded"
        return detect_kind(options.connection)
    return kind


def connect(options: BackendOptions) -> Cluster:
    """A checked connection to the server the options name (no index is opened)."""
    kind = resolve_kind(options)
    if kind == "embedded" or options.connection is None:
        raise ConfigError("this command works on an Elasticsearch/OpenSearch index: give --url (or ESRANK_URL)")
    return Cluster.connect(options.connection, kind)


def open_backend(options: BackendOptions, *, create: bool = False, overwrite: bool = False, alias: bool = False,
                 resume: bool = False) -> Backend:
    """A ready backend: created (``create``) or opened (must exist); with ``alias`` (servers only), a new
    concrete index behind the alias ``options.index`` (see ``ElasticBackend.begin_alias_load``)."""
    kind = resolve_kind(options)
    backend: Backend
    if kind == "embedded":
        from .embedded import EmbeddedBackend

        backend = EmbeddedBackend(options.index, options.path, max_query_terms=options.max_query_terms,
                                  postings_budget=options.postings_budget)
    else:
        from .elastic import ElasticBackend

        assert options.connection is not None
        backend = ElasticBackend(options.index, options.connection, kind, max_query_terms=options.max_query_terms)
    try:
        if alias:
            from .elastic import ElasticBackend

            if not isinstance(backend, ElasticBackend):
                raise ConfigError("--alias needs an Elasticsearch/OpenSearch server (--url)")
            backend.begin_alias_load(resume=resume, overwrite=overwrite)
        elif create:
            backend.create(overwrite=overwrite)
        else:
            backend.open()
    except BaseException:
        backend.close()
        raise
    return backend
