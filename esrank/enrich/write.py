"""Writing enrichment back to a live index: the one-field put-mapping, and bulk partial updates guarded by
optimistic concurrency control (``if_seq_no`` / ``if_primary_term``).

A bulk item answered 409 means the document changed after it was read: the caller re-reads and redoes it.
Items answered 429/502/503/504 are sent again with backoff; a 404 means the document was deleted meanwhile.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from ..errors import BackendError, ConfigError
from ..retrieval.cluster import Cluster
from ..retrieval.mappings import load_mapping
from .scan import Hit

MAPPING = "enrichment"  # mappings/enrichment.json: english analyzer
MAPPING_FALLBACK = "enrichment.standard"  # servers without the analysis-common module
RANK_FEATURES = "scores"  # the rank_features sub-field: phrase → score (needs the mapper-extras module)
TEMPLATE_PREFIX = "esrank-enrichment"


@dataclass
class WriteResult:
    """Outcome of one bulk of partial updates, by document id."""

    written: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)  # changed since read: re-read and redo
    deleted: list[str] = field(default_factory=list)  # gone since read
    failed: list[tuple[str, str]] = field(default_factory=list)  # (id, reason)
    retried: int = 0


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


def base_mapping(cluster: Cluster) -> dict[str, Any]:
    """The enrichment field's mapping from ``mappings/`` as this server can take it (analyzer it has;
    the ``rank_features`` sub-field only where the mapper-extras module is installed)."""
    mapping = load_mapping(MAPPING if cluster.has_analyzer("english") else MAPPING_FALLBACK)
    if not cluster.has_module("mapper-extras"):
        mapping["properties"].pop(RANK_FEATURES, None)
    return mapping


def field_mapping(cluster: Cluster, mappings: dict[str, Any], text_fields: Sequence[str]) -> dict[str, Any]:
    """The mapping of the enrichment field: from ``mappings/``, its text analysed like the first text field."""
    mapping = base_mapping(cluster)
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


def ensure_mapping(cluster: Cluster, index: str, field_name: str, text_fields: Sequence[str]) -> str:
    """Add the enrichment field to the index mapping (that field only); returns what was done."""
    existing = cluster.get_mappings(index)
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
        missing = {k: v for k, v in base_mapping(cluster)["properties"].items() if k not in props}
        if missing:  # fields added by a newer esrank (source hash, rank features): add them alone
            cluster.put_mapping(name, {field_name: {"properties": missing}})
    if not todo:
        return "mapping already present"
    for name in todo:
        mapping = field_mapping(cluster, existing[name], text_fields)
        cluster.put_mapping(name, {field_name: {"properties": mapping["properties"]}})
    return f"mapping of '{field_name}' added to {', '.join(todo)}"


def install_template(cluster: Cluster, pattern: str, field_name: str, *, priority: int = 100) -> str:
    """Install the enrichment field as a component template and compose it into an index template for
    ``pattern``, so that new indices matching it are created with the field. Returns what was done.

    When an index template with exactly this pattern exists already, the component is added to its
    ``composed_of`` (a new index gets only one composable template: the user's keeps its other parts);
    otherwise an ``esrank-enrichment-<field>`` index template is created at ``priority``.
    """
    name = f"{TEMPLATE_PREFIX}-{field_name}"
    mapping = base_mapping(cluster)
    meta = {"esrank_mapping": MAPPING, "field": field_name}
    cluster.put_component_template(name, {"mappings": {"properties": {field_name: {
        "properties": mapping["properties"]}}}}, meta=meta)
    owner = cluster.index_template_for(pattern)
    if owner is not None and owner[0] != name:
        template_name, template = owner
        composed = list(template.get("composed_of") or [])
        if name not in composed:
            composed.append(name)
            cluster.put_index_template(template_name, template["index_patterns"], composed_of=composed,
                                       template=template.get("template"), priority=int(template.get("priority") or 0),
                                       meta=template.get("_meta"))
        return f"component template '{name}' added to index template '{template_name}' ({pattern})"
    cluster.put_index_template(name, [pattern], composed_of=[name], priority=priority, meta=meta)
    return f"index template '{name}' for '{pattern}' installed (component template '{name}')"


def write_updates(cluster: Cluster, field_name: str, updates: Sequence[tuple[Hit, dict[str, Any]]],
                  *, refresh: bool = False) -> WriteResult:
    """Bulk partial updates of ``field_name``, each guarded by the hit's ``_seq_no`` / ``_primary_term``."""
    result = WriteResult()
    actions = [({"update": {"_index": hit.index, "_id": hit.id, "if_seq_no": hit.seq_no,
                            "if_primary_term": hit.primary_term}}, {"doc": {field_name: payload}})
               for hit, payload in updates]
    outcome = cluster.bulk(actions, what="write enrichment", refresh=refresh)
    result.retried = outcome.retried
    for (hit, _), info in zip(updates, outcome.items):
        status = int(info.get("status", 0))
        if 200 <= status < 300:
            result.written.append(hit.id)
        elif status == 409:
            result.conflicts.append(hit.id)
        elif status == 404:
            result.deleted.append(hit.id)
        else:
            result.failed.append((hit.id, cluster.item_error(info)))
    return result
