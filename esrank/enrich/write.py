"""Writing enrichment back to a live index: the one-field put-mapping, and bulk partial updates guarded by
optimistic concurrency control (``if_seq_no`` / ``if_primary_term``).

A bulk item answered 409 means the document changed after it was read: the caller re-reads and redoes it.
Items answered 429/502/503/504 are sent again with backoff; a 404 means the document was deleted meanwhile.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..errors import BackendError, ConfigError
from ..retrieval.connection import RETRY_STATUS, Connection, body, has_analyzer
from ..retrieval.mappings import load_mapping
from .scan import Hit

MAPPING = "enrichment"  # mappings/enrichment.json: english analyzer
MAPPING_FALLBACK = "enrichment.standard"  # servers without the analysis-common module


@dataclass
class WriteResult:
    """Outcome of one bulk of partial updates, by document id."""

    written: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)  # changed since read: re-read and redo
    deleted: list[str] = field(default_factory=list)  # gone since read
    failed: list[tuple[str, str]] = field(default_factory=list)  # (id, reason)
    retried: int = 0


def get_mappings(conn: Connection, index: str) -> dict[str, dict[str, Any]]:
    """The mapping of each concrete index behind ``index`` (a name, alias or pattern)."""
    c = conn.client
    resp = body(conn.call(f"read the mapping of '{index}'", lambda: c.indices.get_mapping(index=index)))
    return {name: value.get("mappings", {}) for name, value in resp.items()}


def _lookup(properties: dict[str, Any], path: str) -> dict[str, Any] | None:
    """The mapping of a dotted field path (``meta.abstract``), or None."""
    node: dict[str, Any] | None = None
    props = properties
    for part in path.split("."):
        node = props.get(part)
        if not isinstance(node, dict):
            return None
        props = node.get("properties", {})
    return node


def field_mapping(conn: Connection, mappings: dict[str, Any], text_fields: Sequence[str]) -> dict[str, Any]:
    """The mapping of the enrichment field: from ``mappings/``, its text analysed like the first text field."""
    name = MAPPING if has_analyzer(conn, "english") else MAPPING_FALLBACK
    mapping = load_mapping(name)
    source = None
    for f in text_fields:
        m = _lookup(mappings.get("properties", {}), f)
        if m is not None and m.get("type") == "text":
            source = m
            break
    if source is not None:
        for sub in (mapping["properties"]["keyphrases"]["properties"]["phrase"], mapping["properties"]["absent"]):
            text = sub["fields"]["text"]
            text.pop("analyzer", None)  # no analyzer on the source field: both use the index default
            for key in ("analyzer", "search_analyzer", "similarity"):
                if key in source:
                    text[key] = source[key]
    return mapping


def ensure_mapping(conn: Connection, index: str, field_name: str, text_fields: Sequence[str]) -> str:
    """Add the enrichment field to the index mapping (that field only); returns what was done."""
    existing = get_mappings(conn, index)
    if not existing:
        raise BackendError(f"index '{index}' does not exist")
    todo: list[str] = []
    for name, mappings in existing.items():
        current = _lookup(mappings.get("properties", {}), field_name)
        if current is None:
            todo.append(name)
            continue
        props = current.get("properties", {})
        if not ("keyphrases" in props and "model" in props and "version" in props):
            raise ConfigError(f"index '{name}' already has a field '{field_name}' that is not an esrank enrichment "
                              "field; choose another name with --field")
    if not todo:
        return "mapping already present"
    c = conn.client
    for name in todo:
        mapping = field_mapping(conn, existing[name], text_fields)
        props = {field_name: {"properties": mapping["properties"]}}
        fn = (lambda: c.indices.put_mapping(index=name, properties=props)) if conn.kind == "elasticsearch" \
            else (lambda: c.indices.put_mapping(index=name, body={"properties": props}))
        conn.call(f"add the '{field_name}' field to the mapping of '{name}'", fn)
    return f"mapping of '{field_name}' added to {', '.join(todo)}"


def write_updates(conn: Connection, field_name: str, updates: Sequence[tuple[Hit, dict[str, Any]]],
                  *, refresh: bool = False) -> WriteResult:
    """Bulk partial updates of ``field_name``, each guarded by the hit's ``_seq_no`` / ``_primary_term``."""
    result = WriteResult()
    pending = list(updates)
    attempt = 0
    c = conn.client
    while pending:
        ops: list[dict[str, Any]] = []
        for hit, payload in pending:
            ops.append({"update": {"_index": hit.index, "_id": hit.id, "if_seq_no": hit.seq_no,
                                   "if_primary_term": hit.primary_term}})
            ops.append({"doc": {field_name: payload}})
        params = {"refresh": "true"} if refresh else {}
        fn = (lambda: c.bulk(operations=ops, **params)) if conn.kind == "elasticsearch" \
            else (lambda: c.bulk(body=ops, params=params))
        resp = body(conn.call("write enrichment", fn))
        retry: list[tuple[Hit, dict[str, Any]]] = []
        for (hit, payload), item in zip(pending, resp["items"]):
            info = item.get("update") or next(iter(item.values()))
            status = int(info.get("status", 0))
            if 200 <= status < 300:
                result.written.append(hit.id)
            elif status == 409:
                result.conflicts.append(hit.id)
            elif status == 404:
                result.deleted.append(hit.id)
            elif status in RETRY_STATUS and attempt < conn.config.max_retries:
                retry.append((hit, payload))
            else:
                err = info.get("error", {})
                reason = f"{err.get('type', 'error')}: {err.get('reason', '')}" if isinstance(err, dict) else str(err)
                reason = " ".join(conn.redact(f"HTTP {status} {reason}").split())
                result.failed.append((hit.id, reason[:300]))
        if retry:
            result.retried += len(retry)
            time.sleep(conn.delay(attempt))
            attempt += 1
        pending = retry
    return result
