"""Table 3 (time, energy, CO2 and dollars per stage and per approach), the per-document line, the
extrapolation rows, and the stacked cost-per-stage chart."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from .extrapolate import Extrapolation
from .records import STAGES, CostSummary, StageTotals

TABLE3_COLUMNS = ("approach", "stage", "runs", "items", "unit", "documents", "seconds", "kwh", "kg_co2",
                  "carbon_intensity", "dollars", "dollars_per_item", "dollars_per_doc", "estimated", "devices")
EXTRAPOLATION_COLUMNS = ("approach", "documents", "hours", "dollars", "kwh", "kg_co2", "carbon_intensity",
                         "per_doc_seconds",
                         "per_doc_dollars", "per_doc_kwh", "per_doc_kg_co2", "fixed_dollars", "per_doc_stages",
                         "fixed_stages", "skipped_stages", "estimated")


def num(v: float | int | None, digits: int = 3) -> str:
    """A number for a Markdown cell: ``-`` for None, 3 significant digits, no needless exponent."""
    if v is None:
        return "-"
    if isinstance(v, int):
        return f"{v:,}"
    if v == 0:
        return "0"
    a = abs(v)
    if 1e-3 <= a < 1e7:
        return f"{v:,.{max(0, digits - 1 - int(_floor_log10(a)))}f}"
    return f"{v:.{digits - 1}e}"


def _floor_log10(a: float) -> int:
    import math

    return int(math.floor(math.log10(a)))


def _row(t: StageTotals) -> dict[str, object]:
    total = t.stage == "total"  # items of different stages do not add up: no per-item figure for a total
    return {"approach": t.approach, "stage": t.stage, "runs": t.runs, "items": None if total else t.items,
            "unit": "" if total else t.unit, "documents": None if total else t.documents,
            "seconds": round(t.seconds, 6), "kwh": t.kwh, "kg_co2": t.kg_co2,
            "carbon_intensity": "; ".join(t.grids), "dollars": t.dollars,
            "dollars_per_item": None if total else t.per_item(t.dollars),
            "dollars_per_doc": None if total else t.per_doc(t.dollars), "estimated": t.estimated,
            "devices": "+".join(t.devices)}


def table3_rows(summary: CostSummary) -> list[dict[str, object]]:
    """One row per (approach, stage) in pipeline order, then the approach's ``total`` row."""
    rows: list[dict[str, object]] = []
    for approach in summary.approaches:
        rows += [_row(t) for t in summary.stages if t.approach == approach]
        rows.append(_row(summary.totals[approach]))
    return rows


def table3_markdown(summary: CostSummary) -> str:
    """Table 3 as Markdown (totals in bold, * on estimated energy, items in their unit unless documents)."""
    head = ["approach", "stage", "runs", "items", "time (s)", "energy (kWh)", "CO2 (kg)", "at g CO2/kWh",
            "cost ($)", "$ / document"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---", "---"] + ["---:"] * (len(head) - 2)) + "|"]
    for r in table3_rows(summary):
        star = "*" if r["estimated"] else ""
        v: dict[str, Any] = r
        items = num(v["items"]) + (f" {v['unit']}" if v["items"] is not None and v["unit"] != "documents" else "")
        cells = [str(v["approach"]), str(v["stage"]), num(v["runs"]), items, num(v["seconds"]),
                 num(v["kwh"]) + (star if v["kwh"] is not None else ""),
                 num(v["kg_co2"]) + (star if v["kg_co2"] is not None else ""),
                 str(v["carbon_intensity"]).replace(" g/kWh", "") or "-",
                 num(v["dollars"]), num(v["dollars_per_doc"])]
        if r["stage"] == "total":
            cells = [f"**{c}**" if c not in ("", "-") else c for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_document_lines(extrapolations: Sequence[Extrapolation]) -> list[str]:
    """One sentence per approach: what one more document costs across its per-document stages."""
    out = []
    for ex in extrapolations:
        if not ex.per_doc_stages:
            out.append(f"{ex.approach}: no per-document stage with an item count was recorded.")
            continue
        energy = ""
        if ex.per_doc_kwh is not None:
            energy = f", {num(ex.per_doc_kwh)} kWh, {num(ex.per_doc_kg_co2)} kg CO2" + ("*" if ex.estimated else "")
        grid = f"; CO2 at {'; '.join(ex.grids)}" if energy and ex.grids else ""
        out.append(f"{ex.approach}: {num(ex.per_doc_seconds)} s, ${num(ex.per_doc_dollars)}{energy} per document "
                   f"({', '.join(ex.per_doc_stages)}){grid}")
    return out


def extrapolation_rows(extrapolations: Sequence[Extrapolation]) -> list[dict[str, object]]:
    """The extrapolation of each approach as flat rows (CSV/JSON)."""
    return [{"approach": ex.approach, "documents": ex.documents, "hours": ex.hours, "dollars": ex.dollars,
             "kwh": ex.kwh, "kg_co2": ex.kg_co2, "carbon_intensity": "; ".join(ex.grids),
             "per_doc_seconds": ex.per_doc_seconds,
             "per_doc_dollars": ex.per_doc_dollars, "per_doc_kwh": ex.per_doc_kwh,
             "per_doc_kg_co2": ex.per_doc_kg_co2, "fixed_dollars": ex.fixed_dollars,
             "per_doc_stages": "+".join(ex.per_doc_stages), "fixed_stages": "+".join(ex.fixed_stages),
             "skipped_stages": "+".join(ex.skipped_stages), "estimated": ex.estimated} for ex in extrapolations]


def extrapolation_markdown(extrapolations: Sequence[Extrapolation]) -> str:
    """The extrapolation as a Markdown table, with the ratio of each approach's dollars to the cheapest."""
    head = ["approach", "documents", "time (h)", "energy (kWh)", "CO2 (kg)", "at g CO2/kWh", "cost ($)",
            "× cheapest", "one-off stages"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * 7 + ["---"]) + "|"]
    cheapest = min((ex.dollars for ex in extrapolations if ex.dollars > 0), default=0.0)
    for ex in extrapolations:
        ratio = num(ex.dollars / cheapest) if cheapest > 0 else "-"
        star = "*" if ex.estimated and ex.kwh is not None else ""
        lines.append("| " + " | ".join([ex.approach, num(ex.documents), num(ex.hours), num(ex.kwh) + star,
                                        num(ex.kg_co2) + star,
                                        "; ".join(ex.grids).replace(" g/kWh", "") or "-", num(ex.dollars), ratio,
                                        ", ".join(ex.fixed_stages) or "-"]) + " |")
    return "\n".join(lines)


def cost_plot(summary: CostSummary, path: str | Path) -> Path:
    """Stacked bars, one per approach, one segment per stage: dollars (and kWh when measured); saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    approaches = summary.approaches
    stages = [s for s in STAGES if any(t.stage == s for t in summary.stages)]
    stages += sorted({t.stage for t in summary.stages} - set(stages))
    panels = [("dollars", "cost ($)")] + ([("kwh", "energy (kWh)")] if summary.carbon else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels) + 1.5, 4.2), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for ax, (attr, label) in zip(axes[0], panels):
        bottoms = [0.0] * len(approaches)
        for i, stage in enumerate(stages):
            vals = []
            for a in approaches:
                t = next((t for t in summary.stages if t.approach == a and t.stage == stage), None)
                v = getattr(t, attr) if t is not None else None
                vals.append(float(v or 0.0))
            if not any(vals):
                continue
            ax.bar(approaches, vals, bottom=bottoms, label=stage, color=cmap(i % 10))
            bottoms = [b + v for b, v in zip(bottoms, vals)]
        ax.set_ylabel(label + (" (estimated)" if attr == "kwh" and summary.estimated else ""))
        ax.set_title(f"{label} per stage")
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 4))
    legend: dict[str, Any] = {}
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(lab, h)
    fig.tight_layout(rect=(0, 0, 0.8, 1))
    fig.legend(list(legend.values()), list(legend), loc="center left", bbox_to_anchor=(0.8, 0.5), fontsize="small")
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
