"""The one module that talks to Elasticsearch / OpenSearch: connection settings, the client, and every call.

``Cluster`` is the only place that imports a client library, knows which server it talks to and sends
requests: search, msearch, bulk, mget, count, refresh, mappings, index and component templates, aliases,
point in time and analyze. Everything goes through one low-level request (``Cluster.request``), so the
retry policy (HTTP 429/502/503/504 and connection errors, capped exponential backoff, each retry announced
on stderr unless ``--quiet``) and the error messages live in one place.

Secrets (API key, password, credentials inside the URL) are kept out of ``repr``, logs and error
messages: every message that leaves this module goes through ``ConnectionConfig.redact``.
"""
from __future__ import annotations

import json
import logging
import random
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from ..errors import BackendError, ConfigError, MissingExtraError

log = logging.getLogger(__name__)
# The clients log each failed attempt of their node pool; esrank reports failures itself, in one line.
logging.getLogger("elastic_transport.node_pool").setLevel(logging.ERROR)
logging.getLogger("elastic_transport.transport").setLevel(logging.ERROR)
logging.getLogger("opensearch").setLevel(logging.ERROR)
T = TypeVar("T")

KINDS = ("elasticsearch", "opensearch")
SUPPORTED_MAJOR = {"elasticsearch": 8, "opensearch": 2}
RETRY_STATUS = frozenset({429, 502, 503, 504})
# The unique, stable order a point in time is paged in: Elasticsearch's ``_shard_doc`` tiebreaker;
# OpenSearch 2.x has none (it came in 3.3), so the Lucene doc id there, tie-broken by ``_id``.
PIT_SORT: dict[str, list[dict[str, str]]] = {"elasticsearch": [{"_shard_doc": "asc"}],
                                             "opensearch": [{"_doc": "asc"}, {"_id": "asc"}]}
WILDCARD_CHARS = "*?,"


def _announce(message: str) -> None:
    """A retry line on stderr, unless ``--quiet``."""
    from .. import progress

    if not getattr(progress, "_quiet", False):
        print(f"esrank: {message}", file=sys.stderr, flush=True)


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
        raw = self.url.strip() if "://" in self.url else f"http://{self.url.strip()}"
        scheme, _, rest = raw.partition("://")
        # user info ends at the LAST '@' before the host, so a password may hold unencoded '#', '/', '?' or '@'
        userinfo, at, hostpart = rest.rpartition("@")
        if at:
            user, colon, password = userinfo.partition(":")
            self.username = self.username or unquote(user) or None
            if colon:
                self.password = self.password or unquote(password) or None
                if password and password not in (self.password or ""):
                    self._extra_secrets = [password]  # the raw (encoded) form must never be shown either
        try:
            parts = urlsplit(f"{scheme.lower()}://{hostpart}")
            port = parts.port  # raises ValueError for ':abc' or '99999'
        except ValueError as e:
            raise ConfigError(f"invalid server URL {self.redact(self._shown(scheme, hostpart))!r}: "
                              f"{self.redact(str(e)).lower()} (expected http[s]://host:port)") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"invalid server URL {self.redact(self._shown(scheme, hostpart))!r} "
                              "(expected http[s]://host:port)")
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        self.url = urlunsplit(parts._replace(netloc=host + (f":{port}" if port else ""))).rstrip("/")
        if self.password and not self.username:
            raise ConfigError("a password needs a user name (ESRANK_USERNAME)")

    @staticmethod
    def _shown(scheme: str, hostpart: str) -> str:
        return f"{scheme}://{hostpart}"

    @staticmethod
    def safe_url(url: str) -> str:
        """A URL with any user info removed."""
        scheme, sep, rest = url.partition("://")
        if not sep:
            return url
        return f"{scheme}://{rest.rpartition('@')[2]}"

    def secrets(self) -> list[str]:
        """The secret strings that must never be shown."""
        extra = getattr(self, "_extra_secrets", [])
        return [s for s in (self.api_key, self.password, *extra) if s]

    def redact(self, text: str) -> str:
        """``text`` with every secret replaced by ``***``."""
        for s in sorted(self.secrets(), key=len, reverse=True):
            text = text.replace(s, "***").replace(quote(s, safe=""), "***")
        return text


@dataclass
class BulkOutcome:
    """The final answer to each action of a bulk (in order), after retrying the retryable items."""

    items: list[dict[str, Any]]  # {"status", "result", "error", ...} per action
    retried: int = 0  # items and requests sent again
    resent: list[bool] = field(default_factory=list)  # per action: a request carrying it was resent


def check_index_name(index: str, *, allow_wildcards: bool = False, what: str = "index") -> str:
    """``index`` when it is a valid index name (or, with ``allow_wildcards``, a pattern or comma list)."""
    bad = ' "\\<|>/#:' + ("" if allow_wildcards else WILDCARD_CHARS)
    if not index or index != index.lower() or any(c in index for c in bad):
        raise ConfigError(f"invalid {what} name {index!r} (lowercase, no spaces or special characters"
                          + ("" if allow_wildcards else "; wildcards and comma lists need --allow-wildcards") + ")")
    return index


class Cluster:
    """One Elasticsearch 8.x or OpenSearch 2.x server: typed calls with retries and one-line errors."""

    def __init__(self, config: ConnectionConfig, kind: str) -> None:
        if kind not in KINDS:
            raise ConfigError(f"unknown backend {kind!r}")
        self.config = config
        self.kind = kind
        self._client = _make_client(config, kind)
        self.version = ""
        self.retries = 0  # requests sent again, over the connection's life
        self._features: dict[str, bool] = {}

    @classmethod
    def connect(cls, config: ConnectionConfig, kind: str = "auto") -> "Cluster":
        """A checked connection: ``kind`` ``auto`` is detected from the server, then its version is checked."""
        cluster = cls(config, detect_kind(config) if kind == "auto" else kind)
        try:
            cluster.check_version()
        except BaseException:
            cluster.close()
            raise
        return cluster

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the client's connections."""
        self._client.close()

    # -- the one request ----------------------------------------------------------------------------
    def request(self, what: str, method: str, path: str, *, body: Any = None,
                params: Mapping[str, Any] | None = None, ok: Iterable[int] = ()) -> Any:
        """One REST request with the retry policy; statuses in ``ok`` return None instead of raising."""
        ok = frozenset(ok)
        return self.call(what, lambda: self._send(method, path, body, params), ok=ok)

    def call(self, what: str, fn: Callable[[], T], *, ok: frozenset[int] = frozenset()) -> T | None:
        """Run ``fn``; retry 429/5xx/connection errors with capped exponential backoff, announcing each retry."""
        attempt = 0
        while True:
            try:
                return fn()
            except Exception as e:  # noqa: BLE001 - the two clients raise unrelated types
                status = error_status(e)
                if status is not None and status in ok:
                    return None
                retryable = (status is None and is_connection_error(e)) or status in RETRY_STATUS
                if not retryable or attempt >= self.config.max_retries:
                    raise self.error(what, e) from None
                delay = self.delay(attempt)
                reason = f"HTTP {status}" if status is not None else f"cannot reach {self.config.url}"
                _announce(self.redact(f"{what}: {reason}; retry {attempt + 1} of {self.config.max_retries} "
                                      f"in {delay:.1f}s"))
                log.debug("%s: %s", what, self.redact(short(e)))
                time.sleep(delay)
                attempt += 1
                self.retries += 1

    def _send(self, method: str, path: str, body: Any, params: Mapping[str, Any] | None) -> Any:
        headers = {"accept": "application/json"}
        data: Any = body
        if isinstance(body, list):  # bulk / msearch: newline-delimited JSON
            data = "".join(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n" for line in body)
            headers["content-type"] = "application/x-ndjson"
        elif body is not None:
            headers["content-type"] = "application/json"
        query = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        if self.kind == "elasticsearch":
            resp = self._client.perform_request(method, path, params=query or None, headers=headers, body=data)
        else:
            with warnings.catch_warnings():  # OpenSearch warns on every page that sorts on _id (see PIT_SORT)
                warnings.filterwarnings("ignore", message=".*fielddata on the _id field")
                resp = self._client.transport.perform_request(method, path, params=query or None, body=data,
                                                              headers=headers)
        return getattr(resp, "body", resp)

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

    # -- server ------------------------------------------------------------------------------------
    def server_version(self) -> tuple[str, str]:
        """(distribution, version number): ``GET /``, or the local node's info where the root endpoint is missing."""
        info = self.request("connect", "GET", "/", ok=(404, 405))
        if info is not None:
            version = info.get("version", {})
            return str(version.get("distribution", "elasticsearch")), str(version.get("number", "?"))
        nodes = self.request("connect", "GET", "/_nodes/_local")["nodes"]
        node = next(iter(nodes.values()))
        return ("elasticsearch" if "build_flavor" in node else "opensearch"), str(node["version"])

    def check_version(self) -> None:
        """Fail clearly when the server is not the expected product or major version."""
        try:
            distribution, number = self.server_version()
        except BackendError as e:
            if "UnsupportedProductError" not in e.reason:
                raise
            distribution, number = self._refused_server()
            if distribution != "elasticsearch":
                raise BackendError(f"{self.config.url} is not Elasticsearch (the elasticsearch client refuses it); "
                                   "for OpenSearch use --backend opensearch") from None
        major = int(number.split(".")[0]) if number[:1].isdigit() else -1
        kind = "elasticsearch" if distribution == "elasticsearch" and major < SUPPORTED_MAJOR[distribution] \
            else self.kind  # an old Elasticsearch is unsupported whatever --backend said
        if distribution != kind:
            raise BackendError(f"{self.config.url} is {distribution} {number}, not {self.kind}; "
                               f"use --backend {distribution}")
        want = SUPPORTED_MAJOR[kind]
        if major != want:
            client = "elasticsearch" if kind == "elasticsearch" else "opensearch-py"
            raise BackendError(f"{kind} server {number} at {self.config.url} is not supported: esrank uses the "
                               f"{client} {want}.x client and needs a {kind} {want}.x server")
        self.version = number

    def _refused_server(self) -> tuple[str, str]:
        """(distribution, version) of a server the elasticsearch client refuses, asked through opensearch-py
        (Elasticsearch before 7.14 sends no product header); ("", "") when that cannot tell."""
        try:
            other = Cluster(self.config, "opensearch")
        except Exception:  # opensearch-py not installed: nothing more to learn
            return "", ""
        try:
            return other.server_version()
        except Exception:
            return "", ""
        finally:
            other.close()

    def has_analyzer(self, analyzer: str) -> bool:
        """Whether the server knows a built-in analyzer (``_analyze`` answers 400 when it does not)."""
        key = f"analyzer:{analyzer}"
        if key not in self._features:
            resp = self.request("check analyzer", "POST", "/_analyze", body={"analyzer": analyzer, "text": "esrank"},
                                ok=(400,))
            self._features[key] = resp is not None
        return self._features[key]

    def has_module(self, module: str) -> bool:
        """Whether every node has a module or plugin (e.g. ``mapper-extras`` for ``rank_features``)."""
        key = f"module:{module}"
        if key not in self._features:
            resp = self.request("list modules", "GET", "/_nodes/plugins", ok=(401, 403))
            if resp is None:  # not allowed to list: assume a regular distribution, which has the modules
                self._features[key] = True
            else:
                nodes = resp.get("nodes", {}).values()
                self._features[key] = bool(nodes) and all(
                    any(m.get("name") == module for m in [*n.get("modules", []), *n.get("plugins", [])])
                    for n in nodes)
        return self._features[key]

    # -- indices -----------------------------------------------------------------------------------
    def index_exists(self, index: str) -> bool:
        """Whether an index (or alias) exists."""
        return self.request(f"check index '{index}'", "GET", f"/{_p(index)}/_settings",
                            params={"filter_path": "*.settings.index.uuid"}, ok=(404,)) is not None

    def create_index(self, index: str, settings: Mapping[str, Any] | None = None,
                     mappings: Mapping[str, Any] | None = None, aliases: Mapping[str, Any] | None = None) -> None:
        """Create an index with settings, mappings and aliases."""
        body: dict[str, Any] = {}
        if settings:
            body["settings"] = settings
        if mappings:
            body["mappings"] = mappings
        if aliases:
            body["aliases"] = aliases
        self.request(f"create index '{index}'", "PUT", f"/{_p(index)}", body=body)

    def delete_index(self, index: str, *, missing_ok: bool = True) -> None:
        """Delete an index (no error when it is missing and ``missing_ok``)."""
        self.request(f"delete index '{index}'", "DELETE", f"/{_p(index)}", ok=(404,) if missing_ok else ())

    def refresh(self, index: str) -> None:
        """Make recent writes visible to search."""
        self.request("refresh", "POST", f"/{_p(index)}/_refresh")

    def get_mappings(self, index: str) -> dict[str, dict[str, Any]]:
        """The mapping of each concrete index behind ``index`` (a name, alias or pattern)."""
        resp = self.request(f"read the mapping of '{index}'", "GET", f"/{_p(index)}/_mapping") or {}
        return {name: value.get("mappings", {}) for name, value in resp.items()}

    def put_mapping(self, index: str, properties: Mapping[str, Any]) -> None:
        """Add fields to the mapping of an index."""
        self.request(f"update the mapping of '{index}'", "PUT", f"/{_p(index)}/_mapping",
                     body={"properties": properties})

    # -- templates ---------------------------------------------------------------------------------
    def put_component_template(self, name: str, template: Mapping[str, Any], meta: Mapping[str, Any] | None = None
                               ) -> None:
        """Create or replace a component template (``template``: settings / mappings / aliases)."""
        body: dict[str, Any] = {"template": template}
        if meta:
            body["_meta"] = meta
        self.request(f"put component template '{name}'", "PUT", f"/_component_template/{_p(name)}", body=body)

    def put_index_template(self, name: str, patterns: Sequence[str], *, composed_of: Sequence[str] = (),
                           template: Mapping[str, Any] | None = None, priority: int = 100,
                           meta: Mapping[str, Any] | None = None) -> None:
        """Create or replace a composable index template for the index patterns."""
        body: dict[str, Any] = {"index_patterns": list(patterns), "composed_of": list(composed_of),
                                "priority": priority}
        if template:
            body["template"] = template
        if meta:
            body["_meta"] = meta
        self.request(f"put index template '{name}'", "PUT", f"/_index_template/{_p(name)}", body=body)

    def get_index_template(self, name: str) -> dict[str, Any] | None:
        """A composable index template, or None."""
        resp = self.request(f"read index template '{name}'", "GET", f"/_index_template/{_p(name)}", ok=(404,))
        if not resp:
            return None
        found = resp.get("index_templates") or []
        return found[0]["index_template"] if found else None

    def index_template_for(self, pattern: str) -> tuple[str, dict[str, Any]] | None:
        """(name, body) of a composable index template whose patterns include exactly ``pattern``, or None."""
        resp = self.request("list index templates", "GET", "/_index_template", ok=(404,)) or {}
        for t in resp.get("index_templates") or []:
            if pattern in (t["index_template"].get("index_patterns") or []):
                return str(t["name"]), dict(t["index_template"])
        return None

    def get_component_template(self, name: str) -> dict[str, Any] | None:
        """A component template, or None."""
        resp = self.request(f"read component template '{name}'", "GET", f"/_component_template/{_p(name)}",
                            ok=(404,))
        found = (resp or {}).get("component_templates") or []
        return found[0]["component_template"] if found else None

    def delete_index_template(self, name: str) -> None:
        """Delete a composable index template (no error when missing)."""
        self.request(f"delete index template '{name}'", "DELETE", f"/_index_template/{_p(name)}", ok=(404,))

    def delete_component_template(self, name: str) -> None:
        """Delete a component template (no error when missing)."""
        self.request(f"delete component template '{name}'", "DELETE", f"/_component_template/{_p(name)}",
                     ok=(404,))

    # -- aliases -----------------------------------------------------------------------------------
    def alias_indices(self, alias: str) -> list[str]:
        """The concrete indices an alias points to (empty when there is no such alias)."""
        resp = self.request(f"read alias '{alias}'", "GET", f"/_alias/{_p(alias)}", ok=(404,))
        return sorted(resp) if resp else []

    def is_alias(self, name: str) -> bool:
        """Whether ``name`` is an alias (not a concrete index)."""
        return bool(self.alias_indices(name))

    def update_aliases(self, actions: Sequence[Mapping[str, Any]]) -> None:
        """Apply alias actions (``add`` / ``remove`` / ``remove_index``) atomically."""
        self.request("switch aliases", "POST", "/_aliases", body={"actions": list(actions)})

    def indices(self, pattern: str) -> list[str]:
        """Concrete index names matching a pattern."""
        resp = self.request(f"list indices '{pattern}'", "GET", f"/_cat/indices/{_p(pattern)}",
                            params={"format": "json", "h": "index"}, ok=(404,))
        return sorted(r["index"] for r in resp or [])

    # -- documents ---------------------------------------------------------------------------------
    def search(self, index: str | None, body: Mapping[str, Any], *, what: str = "search") -> dict[str, Any]:
        """One search (``index`` None: the index comes from a point in time in the body)."""
        path = f"/{_p(index)}/_search" if index else "/_search"
        return dict(self.request(what, "POST", path, body=dict(body)))

    def msearch(self, searches: Sequence[tuple[str, Mapping[str, Any]]], *, what: str = "search"
                ) -> list[dict[str, Any]]:
        """Several searches in one request: (index, body) → one response each (with ``error`` on failure)."""
        lines: list[Any] = []
        for index, body in searches:
            lines += [{"index": index}, dict(body)]
        return list(self.request(what, "POST", "/_msearch", body=lines)["responses"])

    def count(self, index: str, query: Mapping[str, Any] | None = None, *, what: str | None = None) -> int:
        """How many documents of ``index`` match ``query`` (all without one)."""
        body = {"query": dict(query)} if query else None
        return int(self.request(what or f"count '{index}'", "POST", f"/{_p(index)}/_count", body=body)["count"])

    def get(self, index: str, doc_id: str) -> dict[str, Any] | None:
        """One document (real time) with ``_seq_no``/``_primary_term``, or None."""
        found = self.request("read a document", "GET", f"/{_p(index)}/_doc/{_p(doc_id)}", ok=(404,))
        return dict(found) if found is not None else None

    def index_document(self, index: str, doc_id: str, source: Mapping[str, Any], *, refresh: bool = False) -> None:
        """Index one document (create or replace)."""
        self.request("index a document", "PUT", f"/{_p(index)}/_doc/{_p(doc_id)}", body=dict(source),
                     params={"refresh": "true"} if refresh else None)

    def mget(self, docs: Sequence[tuple[str, str]], *, source: Sequence[str] | bool = True,
             what: str = "look up documents") -> list[dict[str, Any]]:
        """Real-time multi-get of (index, id) pairs; ``source`` False, True or a list of fields."""
        params: dict[str, Any] = {}
        if source is False:
            params["_source"] = "false"
        elif source is not True:
            params["_source_includes"] = ",".join(source)
        body = {"docs": [{"_index": i, "_id": d} for i, d in docs]}
        return list(self.request(what, "POST", "/_mget", body=body, params=params)["docs"])

    def mtermvectors(self, index: str, docs: Sequence[Mapping[str, Any]], *, what: str = "analyse documents"
                     ) -> list[dict[str, Any]]:
        """Term vectors of (artificial) documents, one answer each (with ``error`` on failure)."""
        resp = self.request(what, "POST", f"/{_p(index)}/_mtermvectors", body={"docs": [dict(d) for d in docs]})
        return list(resp["docs"])

    def bulk(self, actions: Sequence[tuple[Mapping[str, Any], Mapping[str, Any] | None]], *, what: str,
             refresh: bool = False) -> BulkOutcome:
        """A bulk of (action, source) pairs; items answered 429/502/503/504 are sent again with backoff."""
        outcome = BulkOutcome([{} for _ in actions], resent=[False] * len(actions))
        pending = list(range(len(actions)))
        attempt = 0
        while pending:
            lines: list[Any] = []
            for i in pending:
                action, source = actions[i]
                lines.append(dict(action))
                if source is not None:
                    lines.append(dict(source))
            before = self.retries
            resp = self.request(what, "POST", "/_bulk", body=lines, params={"refresh": "true"} if refresh else None)
            resent = self.retries - before
            outcome.retried += resent
            retry: list[int] = []
            for i, item in zip(pending, resp["items"]):
                info = next(iter(item.values()))
                outcome.resent[i] = outcome.resent[i] or bool(resent)
                if int(info.get("status", 0)) in RETRY_STATUS and attempt < self.config.max_retries:
                    retry.append(i)
                else:
                    outcome.items[i] = info
            if retry:
                outcome.retried += len(retry)
                time.sleep(self.delay(attempt))
                attempt += 1
            pending = retry
        return outcome

    def item_error(self, info: Mapping[str, Any]) -> str:
        """A one-line, redacted reason of a failed bulk item."""
        err = info.get("error", {})
        reason = f"{err.get('type', 'error')}: {err.get('reason', '')}" if isinstance(err, dict) else str(err)
        reason = " ".join(self.redact(f"HTTP {info.get('status', 0)} {reason}").split())
        return reason if len(reason) <= 300 else reason[:297] + "..."

    # -- point in time -----------------------------------------------------------------------------
    @property
    def pit_sort(self) -> list[dict[str, str]]:
        """A unique, stable sort for paging a point in time with ``search_after``."""
        return PIT_SORT[self.kind]

    def open_pit(self, index: str, keep_alive: str) -> str:
        """Open a point in time on an index; returns its id."""
        if self.kind == "elasticsearch":
            resp = self.request("open point in time", "POST", f"/{_p(index)}/_pit",
                                params={"keep_alive": keep_alive})
            return str(resp["id"])
        resp = self.request("create point in time", "POST", f"/{_p(index)}/_search/point_in_time",
                            params={"keep_alive": keep_alive})
        return str(resp["pit_id"])

    def close_pit(self, pit_id: str) -> None:
        """Close a point in time (best effort: it expires by itself after its keep-alive)."""
        try:
            if self.kind == "elasticsearch":
                self._send("DELETE", "/_pit", {"id": pit_id}, None)
            else:
                self._send("DELETE", "/_search/point_in_time", {"pit_id": [pit_id]}, None)
        except Exception:  # noqa: BLE001
            pass

    def pit_body(self, pit_id: str, keep_alive: str) -> dict[str, Any]:
        """The ``pit`` clause of a search over a point in time."""
        return {"id": pit_id, "keep_alive": keep_alive}


def _p(name: str) -> str:
    """A path segment (index names, ids) with reserved characters escaped."""
    return quote(name, safe="*,-_.+")


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


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
    try:
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
    except (ValueError, TypeError) as e:  # a URL the client cannot parse: never show it raw
        raise ConfigError(f"invalid server URL {config.url!r}: {config.redact(str(e))}") from None


def detect_kind(config: ConnectionConfig) -> str:
    """``elasticsearch`` or ``opensearch``, from the server's answer to ``GET /``."""
    cluster = Cluster(config, "elasticsearch")
    try:
        distribution, _ = cluster.server_version()
    except BackendError as e:
        if "UnsupportedProductError" in e.reason:
            return "opensearch"
        raise
    finally:
        cluster.close()
    return "opensearch" if distribution == "opensearch" else "elasticsearch"
