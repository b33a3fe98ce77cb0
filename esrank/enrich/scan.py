"""Reading a live index for enrichment: point-in-time + ``search_after`` pages (optionally one slice of
them), and real-time re-reads of documents that changed while they were being enriched.

Elasticsearch 8.x and OpenSearch 2.x name the point-in-time API differently (``open_point_in_time`` /
``create_pit``); both are hidden behind ``PointInTime``. Every hit carries ``_seq_no`` and
``_primary_term`` so the write-back can use optimistic concurrency control.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

from ..errors import ConfigError
from ..retrieval.connection import Connection, body


# The unique, stable order a point in time is paged in: Elasticsearch's ``_shard_doc`` tiebreaker;
# OpenSearch 2.x has none (it came in 3.3), so the Lucene doc id there, tie-broken by ``_id``.
SORT: dict[str, list[dict[str, str]]] = {"elasticsearch": [{"_shard_doc": "asc"}],
                                         "opensearch": [{"_doc": "asc"}, {"_id": "asc"}]}


@dataclass
class Hit:
    """One stored document as read: where it lives, its version stamp and its source."""

    index: str
    id: str
    seq_no: int
    primary_term: int
    source: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SliceSpec:
    """Which part of the index a worker reads: slice ``id`` of ``max`` (``max`` 1 = everything)."""

    id: int = 0
    max: int = 1

    def __post_init__(self) -> None:
        if self.max < 1 or not 0 <= self.id < self.max:
            raise ValueError(f"slice {self.id} of {self.max} does not exist")


class PointInTime:
    """A point in time on an index, opened on enter and closed on exit (both server kinds)."""

    def __init__(self, conn: Connection, index: str, keep_alive: str = "5m", shared_id: str | None = None) -> None:
        self.conn = conn
        self.index = index
        self.keep_alive = keep_alive
        self.id: str | None = shared_id
        self.owned = shared_id is None  # a point in time given by id (shared by machines) is left open

    def __enter__(self) -> "PointInTime":
        if not self.owned:
            return self
        c = self.conn.client
        if self.conn.kind == "elasticsearch":
            resp = body(self.conn.call("open point in time",
                                       lambda: c.open_point_in_time(index=self.index, keep_alive=self.keep_alive)))
            self.id = resp["id"]
        else:
            resp = body(self.conn.call("create point in time",
                                       lambda: c.create_pit(index=self.index, keep_alive=self.keep_alive)))
            self.id = resp["pit_id"]
        return self

    def __exit__(self, *exc: object) -> None:
        if self.id is None or not self.owned:
            return
        c = self.conn.client
        pit_id = self.id
        self.id = None
        try:
            if self.conn.kind == "elasticsearch":
                c.close_point_in_time(id=pit_id)
            else:
                c.delete_pit(body={"pit_id": [pit_id]})
        except Exception:  # noqa: BLE001 - the point in time expires by itself after keep_alive
            pass


def scan(conn: Connection, pit: PointInTime, *, query: dict[str, Any] | None = None, source: Sequence[str] = (),
         page_size: int = 100, slice_spec: SliceSpec = SliceSpec()) -> Iterator[list[Hit]]:
    """Pages of hits over an open point in time (one slice of it when ``slice_spec.max`` > 1).

    Slices split each shard by Lucene document id, which is stable within one point in time only: workers
    that share an index must share the point in time (see ``PointInTime``'s ``shared_id``).
    """
    pit_id = pit.id
    after: list[Any] | None = None
    c = conn.client
    while True:
        req: dict[str, Any] = {
            "pit": {"id": pit_id, "keep_alive": pit.keep_alive}, "size": page_size,
            "sort": SORT[conn.kind], "seq_no_primary_term": True, "track_total_hits": False,
            "_source": list(source) if source else True,
        }
        if query:
            req["query"] = query
        if slice_spec.max > 1:
            req["slice"] = {"id": slice_spec.id, "max": slice_spec.max}
        if after is not None:
            req["search_after"] = after
        with warnings.catch_warnings():  # OpenSearch warns on every page that sorts on _id (see SORT)
            warnings.filterwarnings("ignore", message=".*fielddata on the _id field")
            resp = body(conn.call(f"read '{pit.index}'", lambda: c.search(body=req)))
        pit_id = resp.get("pit_id", pit_id)
        hits = resp["hits"]["hits"]
        if not hits:
            return
        yield [Hit(h["_index"], h["_id"], int(h["_seq_no"]), int(h["_primary_term"]), h.get("_source") or {})
               for h in hits]
        after = hits[-1]["sort"]
        if len(hits) < page_size:
            return


def count(conn: Connection, index: str, query: dict[str, Any] | None = None) -> int:
    """How many documents of ``index`` match ``query`` (all without one)."""
    c = conn.client
    req = {"query": query} if query else {}
    return int(body(conn.call(f"count '{index}'", lambda: c.count(index=index, body=req)))["count"])


def reread(conn: Connection, hits: Sequence[Hit], source: Sequence[str] = ()) -> dict[str, Hit | None]:
    """The current version of each hit's document (real-time ``_mget``); None for a deleted document."""
    c = conn.client
    docs = [{"_index": h.index, "_id": h.id} for h in hits]
    req: dict[str, Any] = {"docs": docs}
    params: dict[str, Any] = {"_source_includes": ",".join(source)} if source else {}
    resp = body(conn.call("re-read changed documents", lambda: c.mget(body=req, params=params)
                          if conn.kind == "opensearch" else c.mget(body=req, source_includes=list(source) or None)))
    out: dict[str, Hit | None] = {}
    for h, d in zip(hits, resp["docs"]):
        if not d.get("found"):
            out[h.id] = None
        else:
            out[h.id] = Hit(d["_index"], d["_id"], int(d["_seq_no"]), int(d["_primary_term"]), d.get("_source") or {})
    return out


def check_query(value: Any) -> dict[str, Any]:
    """A ``--query`` value: a JSON object in Query DSL (``{"match_all": {}}``), or a ConfigError."""
    if not isinstance(value, dict) or len(value) == 0:
        raise ConfigError("--query must be a JSON object in Query DSL, e.g. {\"term\": {\"lang\": \"en\"}}")
    return value

