"""Reading a live index for enrichment: point-in-time + ``search_after`` pages (optionally one slice of
them), and real-time re-reads of documents that changed while they were being enriched.

The point-in-time API differs between Elasticsearch and OpenSearch; ``esrank.retrieval.cluster`` hides it.
Every hit carries ``_seq_no`` and
``_primary_term`` so the write-back can use optimistic concurrency control.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

from ..errors import ConfigError
from ..retrieval.cluster import Cluster


@dataclass
class Hit:
    """One stored document as read: where it lives, its version stamp and its source."""

    index: str
    id: str
    seq_no: int
    primary_term: int
    source: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, h: dict[str, Any]) -> "Hit":
        """A hit from a search or get answer (with ``_seq_no`` / ``_primary_term``)."""
        return cls(h["_index"], h["_id"], int(h["_seq_no"]), int(h["_primary_term"]), h.get("_source") or {})


@dataclass(frozen=True)
class SliceSpec:
    """Which part of the index a worker reads: slice ``id`` of ``max`` (``max`` 1 = everything)."""

    id: int = 0
    max: int = 1

    def __post_init__(self) -> None:
        if self.max < 1 or not 0 <= self.id < self.max:
            raise ValueError(f"slice {self.id} of {self.max} does not exist")


class PointInTime:
    """A point in time on an index, opened on enter and closed on exit."""

    def __init__(self, cluster: Cluster, index: str, keep_alive: str = "5m", shared_id: str | None = None) -> None:
        self.cluster = cluster
        self.index = index
        self.keep_alive = keep_alive
        self.id: str | None = shared_id
        self.owned = shared_id is None  # a point in time given by id (shared by machines) is left open

    def __enter__(self) -> "PointInTime":
        if self.owned:
            self.id = self.cluster.open_pit(self.index, self.keep_alive)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.id is None or not self.owned:
            return
        pit_id, self.id = self.id, None
        self.cluster.close_pit(pit_id)


def scan(cluster: Cluster, pit: PointInTime, *, query: dict[str, Any] | None = None, source: Sequence[str] = (),
         page_size: int = 100, slice_spec: SliceSpec = SliceSpec()) -> Iterator[list[Hit]]:
    """Pages of hits over an open point in time (one slice of it when ``slice_spec.max`` > 1).

    Slices split each shard by Lucene document id, which is stable within one point in time only: workers
    that share an index must share the point in time (see ``PointInTime``'s ``shared_id``).
    """
    assert pit.id is not None
    pit_id: str = pit.id
    after: list[Any] | None = None
    while True:
        req: dict[str, Any] = {
            "pit": cluster.pit_body(pit_id, pit.keep_alive), "size": page_size, "sort": cluster.pit_sort,
            "seq_no_primary_term": True, "track_total_hits": False,
            "_source": list(source) if source else True,
        }
        if query:
            req["query"] = query
        if slice_spec.max > 1:
            req["slice"] = {"id": slice_spec.id, "max": slice_spec.max}
        if after is not None:
            req["search_after"] = after
        resp = cluster.search(None, req, what=f"read '{pit.index}'")
        pit_id = resp.get("pit_id", pit_id)
        hits = resp["hits"]["hits"]
        if not hits:
            return
        yield [Hit.from_json(h) for h in hits]
        after = hits[-1]["sort"]
        if len(hits) < page_size:
            return


def count(cluster: Cluster, index: str, query: dict[str, Any] | None = None) -> int:
    """How many documents of ``index`` match ``query`` (all without one)."""
    return cluster.count(index, query)


def reread(cluster: Cluster, hits: Sequence[Hit], source: Sequence[str] = ()) -> dict[str, Hit | None]:
    """The current version of each hit's document (real-time ``_mget``); None for a deleted document."""
    docs = cluster.mget([(h.index, h.id) for h in hits], source=list(source) if source else True,
                        what="re-read changed documents")
    return {h.id: Hit.from_json(d) if d.get("found") else None for h, d in zip(hits, docs)}


def check_query(value: Any) -> dict[str, Any]:
    """A ``--query`` value: a JSON object in Query DSL (``{"match_all": {}}``), or a ConfigError."""
    if not isinstance(value, dict) or len(value) == 0:
        raise ConfigError("--query must be a JSON object in Query DSL, e.g. {\"term\": {\"lang\": \"en\"}}")
    return value

