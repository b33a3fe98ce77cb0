"""Stage records (one per timed pipeline stage), their JSONL log, and the sums the report needs."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..errors import InputError

#: The pipeline stages, in pipeline order (the order of the report's rows).
STAGES: tuple[str, ...] = (
    "tokenisation", "index_loading", "neighbour_retrieval", "fine_tuning", "document_encoding",
    "candidate_encoding", "candidate_ranking", "bart_training", "bart_inference", "enrichment",
)
#: Stages paid once whatever the number of new documents (extrapolation keeps them fixed).
ONE_OFF_STAGES: frozenset[str] = frozenset({"index_loading", "fine_tuning", "bart_training"})

LOG_FILE = "cost.jsonl"


@dataclass(frozen=True)
class HostFacts:
    """The machine a stage ran on."""

    cpu_model: str = ""
    cpu_count: int = 0
    ram_gb: float = 0.0
    gpu: str = ""
    os: str = ""
    python: str = ""
    esrank_version: str = ""
    codecarbon_version: str | None = None


@dataclass
class StageRecord:
    """Time, energy, CO2 and dollars of one run of one stage (kwh/kg_co2 are None without carbon tracking)."""

    stage: str
    approach: str
    items: int
    seconds: float
    kwh: float | None
    kg_co2: float | None
    dollars: float
    device: str
    estimated: bool
    host: HostFacts = field(default_factory=HostFacts)
    price_per_hour: float = 0.0
    country_iso: str | None = None
    energy_method: str = ""
    run_id: str = ""
    started_at: str = ""
    unit: str = "documents"
    documents: int | None = None
    g_co2_per_kwh: float | None = None  # the grid carbon intensity the CO2 figure was computed with
    carbon_location: str = ""  # where that intensity comes from: an ISO country code or "world average"

    @property
    def grid(self) -> str:
        """The carbon intensity behind the CO2 figure, e.g. "475 g/kWh (world average)" ("" without CO2)."""
        if self.kg_co2 is None:
            return ""
        g = self.g_co2_per_kwh
        if g is None and self.kwh:  # a record written before the intensity was recorded
            g = self.kg_co2 / self.kwh * 1000.0
        where = self.carbon_location or self.country_iso or "unknown location"
        return f"{g:.0f} g/kWh ({where})" if g is not None else f"? g/kWh ({where})"

    @property
    def doc_count(self) -> int | None:
        """Documents the stage served: ``documents`` when given, else ``items`` when they are documents."""
        if self.documents is not None:
            return self.documents
        return self.items if self.unit == "documents" else None

    def to_json(self) -> dict[str, Any]:
        """The JSON object written as one line of ``cost.jsonl``."""
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "StageRecord":
        """Rebuild a record from its JSON object (unknown keys are ignored)."""
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in obj.items() if k in known}
        for key in ("stage", "approach", "seconds", "dollars"):
            if key not in data:
                raise ValueError(f"missing field {key!r}")
        host = data.get("host") or {}
        if not isinstance(host, dict):
            raise ValueError("'host' must be an object")
        hkeys = {f.name for f in fields(HostFacts)}
        data["host"] = HostFacts(**{k: v for k, v in host.items() if k in hkeys})
        data.setdefault("items", 0)
        data.setdefault("kwh", None)
        data.setdefault("kg_co2", None)
        data.setdefault("device", "")
        data.setdefault("estimated", False)
        rec = cls(**data)
        if not isinstance(rec.seconds, (int, float)) or rec.seconds < 0:
            raise ValueError("'seconds' must be a non-negative number")
        if not isinstance(rec.items, int) or rec.items < 0:
            raise ValueError("'items' must be a non-negative integer")
        if rec.documents is not None and (not isinstance(rec.documents, int) or rec.documents < 0):
            raise ValueError("'documents' must be a non-negative integer or null")
        return rec


def log_path(log: str | Path) -> Path:
    """The JSONL file of a cost log given as a directory (``DIR/cost.jsonl``) or as the file itself."""
    p = Path(log)
    return p / LOG_FILE if p.is_dir() or not p.suffix else p


def append_record(log_dir: str | Path, record: StageRecord) -> Path:
    """Append one record as a JSON line to ``log_dir/cost.jsonl`` (the directory is created)."""
    d = Path(log_dir)
    d.mkdir(parents=True, exist_ok=True)
    path = d / LOG_FILE
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
    return path


def read_records(log: str | Path) -> Iterator[StageRecord]:
    """Read the stage records of a cost log (a directory or a ``cost.jsonl`` file); bad lines raise InputError."""
    path = log_path(log)
    if not path.exists():
        raise InputError("no cost log here (run a command with --cost-log DIR first)", source=str(path))
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                if not isinstance(obj, dict):
                    raise ValueError("a line must be a JSON object")
                yield StageRecord.from_json(obj)
            except (ValueError, TypeError) as e:
                raise InputError(f"bad cost record: {e}", source=str(path), line=lineno) from None


@dataclass
class StageTotals:
    """Sums over the records of one approach and one stage (stage ``"total"`` for an approach's total)."""

    approach: str
    stage: str
    runs: int = 0
    items: int = 0
    seconds: float = 0.0
    kwh: float | None = None
    kg_co2: float | None = None
    dollars: float = 0.0
    estimated: bool = False
    devices: tuple[str, ...] = ()
    unit: str = ""
    documents: int | None = 0
    grids: tuple[str, ...] = ()  # carbon intensities (with their location) behind the CO2 figures

    def add(self, rec: "StageRecord | StageTotals") -> None:
        """Add a record (or other totals) into these totals."""
        first = self.runs == 0
        self.runs += rec.runs if isinstance(rec, StageTotals) else 1
        self.items += rec.items
        docs = rec.documents if isinstance(rec, StageTotals) else rec.doc_count
        self.documents = None if docs is None or self.documents is None else self.documents + docs
        self.unit = rec.unit if first or rec.unit == self.unit else "mixed"
        self.seconds += rec.seconds
        self.dollars += rec.dollars
        if rec.kwh is not None:
            self.kwh = (self.kwh or 0.0) + rec.kwh
        if rec.kg_co2 is not None:
            self.kg_co2 = (self.kg_co2 or 0.0) + rec.kg_co2
        self.estimated = self.estimated or rec.estimated
        devs = rec.devices if isinstance(rec, StageTotals) else (rec.device,)
        self.devices = tuple(sorted(set(self.devices) | {d for d in devs if d}))
        grids = rec.grids if isinstance(rec, StageTotals) else (rec.grid,)
        self.grids = tuple(sorted(set(self.grids) | {g for g in grids if g}))

    def per_item(self, value: float | None) -> float | None:
        """A summed value divided by the items (None when there are no items or no value)."""
        if value is None or self.items <= 0:
            return None
        return value / self.items

    def per_doc(self, value: float | None) -> float | None:
        """A summed value divided by the documents served (None when unknown, zero, or no value)."""
        if value is None or not self.documents:
            return None
        return value / self.documents


@dataclass
class CostSummary:
    """Per-stage totals of each approach, and each approach's total."""

    stages: list[StageTotals]
    totals: dict[str, StageTotals]
    records: int = 0
    estimated: bool = False
    carbon: bool = False

    @property
    def approaches(self) -> list[str]:
        """Approaches in the order they first appear in the log."""
        return list(self.totals)


def _stage_order(stage: str) -> tuple[int, str]:
    return (STAGES.index(stage), "") if stage in STAGES else (len(STAGES), stage)


def summarise(records: Iterable[StageRecord]) -> CostSummary:
    """Sum records per (approach, stage) and per approach; totals equal the sum of their stages."""
    by_key: dict[tuple[str, str], StageTotals] = {}
    totals: dict[str, StageTotals] = {}
    n = 0
    estimated = carbon = False
    for rec in records:
        n += 1
        estimated = estimated or rec.estimated
        carbon = carbon or rec.kwh is not None
        key = (rec.approach, rec.stage)
        if key not in by_key:
            by_key[key] = StageTotals(rec.approach, rec.stage)
        by_key[key].add(rec)
        if rec.approach not in totals:
            totals[rec.approach] = StageTotals(rec.approach, "total")
        totals[rec.approach].add(rec)
    order = list(totals)
    stages = sorted(by_key.values(), key=lambda t: (order.index(t.approach), _stage_order(t.stage)))
    return CostSummary(stages=stages, totals=totals, records=n, estimated=estimated, carbon=carbon)
