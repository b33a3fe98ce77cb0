"""Open a backend from options: no URL → the embedded bm25s index; a URL → Elasticsearch or OpenSearch."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from .base import Backend
from .query import DEFAULT_MAX_TERMS

BACKENDS = ("auto", "embedded", "elasticsearch", "opensearch")


@dataclass
class BackendOptions:
    """Everything needed to open an index; secrets are kept out of ``repr``."""

    index: str
    backend: str = "auto"
    url: str | None = None
    path: str | Path | None = None
    api_key: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_certs: str | None = None
    verify_certs: bool = True
    timeout: float = 60.0
    max_retries: int = 8
    max_query_terms: int = DEFAULT_MAX_TERMS


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
        if not options.url:
            return "embedded"
        from .connection import detect_kind

        return detect_kind(_connection_config(options))
    return kind


def _connection_config(options: BackendOptions):  # type: ignore[no-untyped-def]
    from .connection import ConnectionConfig

    assert options.url is not None
    return ConnectionConfig(options.url, api_key=options.api_key, username=options.username,
                            password=options.password, ca_certs=options.ca_certs, verify_certs=options.verify_certs,
                            timeout=options.timeout, max_retries=options.max_retries)


def open_backend(options: BackendOptions, *, create: bool = False, overwrite: bool = False) -> Backend:
    """A ready backend: created (``create``) or opened (must exist)."""
    kind = resolve_kind(options)
    backend: Backend
    if kind == "embedded":
        from .embedded import EmbeddedBackend

        backend = EmbeddedBackend(options.index, options.path, max_query_terms=options.max_query_terms)
    else:
        from .elastic import ElasticBackend

        backend = ElasticBackend(options.index, _connection_config(options), kind,
                                 max_query_terms=options.max_query_terms)
    if create:
        backend.create(overwrite=overwrite)
    else:
        backend.open()  # type: ignore[attr-defined]
    return backend
