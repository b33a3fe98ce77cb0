"""What processing N documents would cost, from the measured per-document cost of each approach."""
from __future__ import annotations

from dataclasses import dataclass, field

from .records import ONE_OFF_STAGES, CostSummary


@dataclass
class Extrapolation:
    """Cost of one approach for ``documents`` documents: one-off stages once, the others per document."""

    approach: str
    documents: int
    per_doc_seconds: float = 0.0
    per_doc_dollars: float = 0.0
    per_doc_kwh: float | None = None
    per_doc_kg_co2: float | None = None
    fixed_seconds: float = 0.0
    fixed_dollars: float = 0.0
    fixed_kwh: float | None = None
    fixed_kg_co2: float | None = None
    per_doc_stages: list[str] = field(default_factory=list)
    fixed_stages: list[str] = field(default_factory=list)
    skipped_stages: list[str] = field(default_factory=list)
    estimated: bool = False
    grids: list[str] = field(default_factory=list)  # carbon intensities behind the CO2 figures

    @property
    def seconds(self) -> float:
        """Total wall time for ``documents`` documents."""
        return self.fixed_seconds + self.documents * self.per_doc_seconds

    @property
    def hours(self) -> float:
        """Total wall time in hours."""
        return self.seconds / 3600.0

    @property
    def dollars(self) -> float:
        """Total dollars for ``documents`` documents."""
        return self.fixed_dollars + self.documents * self.per_doc_dollars

    @property
    def kwh(self) -> float | None:
        """Total energy (None when energy was not measured)."""
        return _total(self.fixed_kwh, self.per_doc_kwh, self.documents)

    @property
    def kg_co2(self) -> float | None:
        """Total CO2 (None when energy was not measured)."""
        return _total(self.fixed_kg_co2, self.per_doc_kg_co2, self.documents)


def _total(fixed: float | None, per_doc: float | None, n: int) -> float | None:
    if fixed is None and per_doc is None:
        return None
    return (fixed or 0.0) + n * (per_doc or 0.0)


def _plus(a: float | None, b: float | None) -> float | None:
    if b is None:
        return a
    return (a or 0.0) + b


def extrapolate(summary: CostSummary, documents: int, *,
                one_off: frozenset[str] | set[str] = ONE_OFF_STAGES) -> list[Extrapolation]:
    """Per approach: one-off stages counted once, every other stage as (its cost / its documents) × documents.

    A per-document stage that recorded no document count cannot be scaled; it is listed in ``skipped_stages``.
    """
    out: dict[str, Extrapolation] = {a: Extrapolation(a, documents) for a in summary.approaches}
    for t in summary.stages:
        ex = out[t.approach]
        ex.estimated = ex.estimated or t.estimated
        ex.grids = sorted(set(ex.grids) | set(t.grids))
        if t.stage in one_off:
            ex.fixed_stages.append(t.stage)
            ex.fixed_seconds += t.seconds
            ex.fixed_dollars += t.dollars
            ex.fixed_kwh = _plus(ex.fixed_kwh, t.kwh)
            ex.fixed_kg_co2 = _plus(ex.fixed_kg_co2, t.kg_co2)
        elif not t.documents:
            ex.skipped_stages.append(t.stage)
        else:
            ex.per_doc_stages.append(t.stage)
            ex.per_doc_seconds += t.seconds / t.documents
            ex.per_doc_dollars += t.dollars / t.documents
            ex.per_doc_kwh = _plus(ex.per_doc_kwh, t.per_doc(t.kwh))
            ex.per_doc_kg_co2 = _plus(ex.per_doc_kg_co2, t.per_doc(t.kg_co2))
    return list(out.values())
