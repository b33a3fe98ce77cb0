"""Connections to Elasticsearch / OpenSearch: settings, auth, version checks and one call shape for both clients.

Secrets (API key, password, credentials inside the URL) are kept out of ``repr``, logs and error
messages: every message that leaves this module goes through ``Connection.redact``.
"""
from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

from ..errors import BackendError, ConfigError, MissingExtraError

log = logging.getLogger(__name__)
# The clients log each failed attempt of their node pool; esrank reports failures itself, in one line.
logging.getLogger("elastic_transport.node_pool").setLevel(logging.ERROR)
logging.getLogger("opensearch").setLevel(logging.ERROR)
T = TypeVar("T")

SUPPORTED_MAJOR = {"elasticsearch": 8, "opensearch": 2}
RETRY_STATUS = frozenset({429, 502, 503, 504})


@dataclass
class ConnectionConfig:
    """Where and how to reach a server. Secrets are excluded from ``repr``."""

    url: str
    api_key: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_certs: str | None = None
    verify_certs: bool = True
    timeout: float = 60.0
    max_retries: int = 8  # per request / bulk item, on 429/502/503/504 and connection errors
    backoff: float = 0.5  # first delay in seconds; doubles per attempt
    max_backoff: float = 30.0  # cap of one delay

    def __post_init__(self) -> None:
        parts = urlsplit(self.url if "://" in self.url else f"http://{self.url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"invalid server URL {self.safe_url(self.url)!r} (expected http[s]://host:port)")
        if parts.username is not None:  # credentials inside the URL: move them out, never print them
            self.username = self.username or unquote(parts.username)
            if parts.password is not None:
                self.password = self.password or unquote(parts.password)
            host = parts.hostname + (f":{parts.port}" if parts.port else "")
            parts = parts._replace(netloc=host)
        self.url = urlunsplit(parts).rstrip("/")
        if self.password and not self.username:
            raise ConfigError("a password needs a user name (ESRANK_USERNAME)")

    @staticmethod
    def safe_url(url: str) -> str:
        """A URL with any user info removed."""
        parts = urlsplit(url)
        if parts.username is None:
            return url
        host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=host))

    def secrets(self) -> list[str]:
        """The secret strings that must never be shown."""
        return [s for s in (self.api_key, self.password) if s]

    def redact(self, text: str) -> str:
        """``text`` with every secret replaced by ``***``."""
        for s in self.secrets():
            text = text.replace(s, "***")
        return text


class Connection:
    """A client of one kind (``elasticsearch`` or ``opensearch``) with retries and clean errors."""

    def __init__(self, config: ConnectionConfig, kind: str) -> None:
        self.config = config
        self.kind = kind
        self.client = _make_client(config, kind)
        self.version = ""
        self.retries = 0  # requests sent again, over the connection's life

    def call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one request; retry 429/5xx/connection errors with capped exponential backoff."""
        attempt = 0
        while True:
            try:
                return fn()
            except Exception as e:  # noqa: BLE001 - the two clients raise unrelated types
                status = error_status(e)
                retryable = status is None and is_connection_error(e) or status in RETRY_STATUS
                if not retryable or attempt >= self.config.max_retries:
                    raise self.error(what, e) from None
                delay = self.delay(attempt)
                log.debug("%s: %s; retry %d in %.1fs", what, self.redact(short(e)), attempt + 1, delay)
                time.sleep(delay)
                attempt += 1
                self.retries += 1

    def delay(self, attempt: int) -> float:
        """Capped exponential backoff with a little jitter."""
        return min(self.config.max_backoff, self.config.backoff * (2 ** attempt)) * (0.9 + 0.2 * random.random())

    def redact(self, text: str) -> str:
        """Remove secrets from a message."""
        return self.config.redact(text)

    def error(self, what: str, e: BaseException) -> BackendError:
        """A one-line BackendError for a failed request (secrets removed)."""
        status = error_status(e)
        where = f"{self.kind} at {self.config.url}"
        if status in (401, 403):
            reason = f"{what}: {where} refused the credentials (HTTP {status}); check ESRANK_API_KEY or " \
                     "ESRANK_USERNAME/ESRANK_PASSWORD"
        elif {c.__name__ for c in type(e).__mro__} & {"SSLError", "TlsError"}:
            reason = f"{what}: TLS failure with {where} ({short(e)}); check the URL's scheme and the CA " \
                     "certificates (--ca-certs)"
        elif status is None and is_connection_error(e):
            reason = f"{what}: cannot reach {where} ({short(e)})"
        else:
            reason = f"{what}: {where} answered HTTP {status}: {short(e)}"
        return BackendError(self.redact(reason))

    def server_version(self) -> tuple[str, str]:
        """(distribution, version number) of the server: ``GET /``, or the local node's info where
        the root endpoint is missing (minimal distributions without the rest-root module)."""
        try:
            info = body(self.client.info())
            version = info.get("version", {})
            return str(version.get("distribution", "elasticsearch")), str(version.get("number", "?"))
        except Exception as e:  # noqa: BLE001
            if error_status(e) not in (404, 405):
                info = self.call("connect", lambda: body(self.client.info()))  # retries / clean error
                version = info.get("version", {})
                return str(version.get("distribution", "elasticsearch")), str(version.get("number", "?"))
        nodes = self.call("connect", lambda: body(self.client.nodes.info(node_id="_local")))["nodes"]
        node = next(iter(nodes.values()))
        return ("elasticsearch" if "build_flavor" in node else "opensearch"), str(node["version"])

    def check_version(self) -> None:
        """Fail clearly when the server is not the expected product or major version."""
        try:
            distribution, number = self.server_version()
        except BackendError as e:
            if "UnsupportedProductError" not in e.reason:
                raise
            raise BackendError(f"{self.config.url} is not Elasticsearch (the elasticsearch client refuses it); "
                               "for OpenSearch use --backend opensearch") from None
        if distribution != self.kind:
            raise BackendError(f"{self.config.url} is {distribution} {number}, not {self.kind}; "
                               f"use --backend {distribution}")
        major = int(number.split(".")[0]) if number[:1].isdigit() else -1
        want = SUPPORTED_MAJOR[self.kind]
        if major != want:
            client = "elasticsearch" if self.kind == "elasticsearch" else "opensearch-py"
            raise BackendError(f"{self.kind} server {number} at {self.config.url} is not supported: esrank uses the "
                               f"{client} {want}.x client and needs a {self.kind} {want}.x server")
        self.version = number


def body(response: Any) -> Any:
    """The JSON body of a response of either client."""
    return getattr(response, "body", response)


def has_analyzer(conn: Connection, analyzer: str) -> bool:
    """Whether the server knows a built-in analyzer (``_analyze`` answers 400 when it does not)."""
    c = conn.client
    try:
        if conn.kind == "elasticsearch":
            c.indices.analyze(analyzer=analyzer, text="esrank")
        else:
            c.indices.analyze(body={"analyzer": analyzer, "text": "esrank"})
        return True
    except Exception as e:  # noqa: BLE001
        if error_status(e) == 400:
            return False
        raise conn.error("check analyzer", e) from None


def error_status(e: BaseException) -> int | None:
    """The HTTP status of a client error, or None for connection-level errors."""
    for attr in ("status_code", "status"):
        value = getattr(e, attr, None)
        if isinstance(value, int):
            return value
    meta = getattr(e, "meta", None)
    status = getattr(meta, "status", None)
    return status if isinstance(status, int) else None


def is_connection_error(e: BaseException) -> bool:
    """Whether the error is a connection failure, reset or timeout (worth retrying)."""
    names = {c.__name__ for c in type(e).__mro__}
    return bool(names & {"ConnectionError", "ConnectionTimeout", "ConnectionResetError", "TimeoutError",
                         "ProtocolError", "ReadTimeoutError", "TransportError"}) \
        and not names & {"SSLError", "TlsError", "SerializationError"}  # certificate problems do not heal


def short(e: BaseException, limit: int = 300) -> str:
    """A short, single-line description of an exception."""
    info = getattr(e, "info", None) or getattr(e, "body", None)
    if isinstance(info, dict) and isinstance(info.get("error"), dict):
        err = info["error"]
        root = (err.get("root_cause") or [err])[0]
        text = f"{root.get('type', '')}: {root.get('reason', '')}"
    else:
        text = f"{type(e).__name__}: {e}"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _make_client(config: ConnectionConfig, kind: str) -> Any:
    tls: dict[str, Any] = {"verify_certs": config.verify_certs}
    if config.ca_certs:
        tls["ca_certs"] = config.ca_certs
    if not config.verify_certs:
        tls["ssl_show_warn"] = False
    if kind == "elasticsearch":
        from elasticsearch import Elasticsearch

        auth: dict[str, Any] = {}
        if config.api_key:
            auth["api_key"] = config.api_key
        elif config.username:
            auth["basic_auth"] = (config.username, config.password or "")
        if not config.url.startswith("https"):
            tls = {}
        return Elasticsearch(config.url, request_timeout=config.timeout, max_retries=0, retry_on_timeout=False,
                             **auth, **tls)
    if kind == "opensearch":
        try:
            from opensearchpy import OpenSearch
        except ImportError:
            raise MissingExtraError("opensearch-py", "opensearch", "talking to OpenSearch") from None
        kw: dict[str, Any] = {}
        if config.api_key:
            kw["headers"] = {"Authorization": f"ApiKey {config.api_key}"}
        elif config.username:
            kw["http_auth"] = (config.username, config.password or "")
        if config.url.startswith("https"):
            kw.update(use_ssl=True, **tls)
        return OpenSearch(hosts=[config.url], timeout=config.timeout, max_retries=0, retry_on_timeout=False, **kw)
    raise ConfigError(f"unknown backend {kind!r}")


def detect_kind(config: ConnectionConfig) -> str:
    """``elasticsearch`` or ``opensearch``, from the server's answer to ``GET /``."""
    conn = Connection(config, "elasticsearch")
    try:
        distribution, _ = conn.server_version()
    except BackendError as e:
        if "UnsupportedProductError" in e.reason:
            return "opensearch"
        raise
    finally:
        conn.client.close()
    return "opensearch" if distribution == "opensearch" else "elasticsearch"
