"""The report: Table 1 (corpus statistics), Table 2 (PRMU scores per system), Table 3 (cost per stage),
the per-document cost, the extrapolation to N documents, and the plots; as Markdown, CSV, JSON and PNG."""
from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..corpus import Document
from ..cost.extrapolate import extrapolate
from ..cost.records import ONE_OFF_STAGES, CostSummary, HostFacts, StageRecord, summarise
from ..cost.tables import (EXTRAPOLATION_COLUMNS, TABLE3_COLUMNS, cost_plot, extrapolation_markdown,
                           extrapolation_rows, num, per_document_lines, table3_markdown, table3_rows)
from ..errors import ConfigError

#: The default number of documents of the extrapolation (the size of a large bibliographic index).
DEFAULT_EXTRAPOLATION_DOCS = 35_000_000


@dataclass
class ReportFiles:
    """What ``write_report`` wrote: the Markdown file, each table (CSV and JSON) and each plot."""

    out_dir: Path
    markdown: Path
    tables: dict[str, list[Path]] = field(default_factory=dict)
    plots: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def all_paths(self) -> list[Path]:
        """Every file written."""
        return [self.markdown] + [p for ps in self.tables.values() for p in ps] + self.plots


def _clean(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _write_table(out_dir: Path, name: str, rows: Sequence[Mapping[str, Any]],
                 columns: Sequence[str] | None = None) -> list[Path]:
    cols = list(columns) if columns else (list(rows[0]) if rows else [])
    csv_path, json_path = out_dir / f"{name}.csv", out_dir / f"{name}.json"
    with csv_path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, lineterminator="\n", extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if _clean(r.get(k)) is None else r.get(k)) for k in cols})
    json_path.write_text(json.dumps([{k: _clean(r.get(k)) for k in cols} for r in rows], indent=2,
                                    ensure_ascii=False) + "\n", encoding="utf-8")
    return [csv_path, json_path]


def _md_table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "(no rows)"
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(str(r.get(h, "")) for h in head) + " |" for r in rows]
    return "\n".join(lines)


def corpus_rows(corpora: Mapping[str, Iterable[Document]], *, strict: bool = False) -> list[dict[str, object]]:
    """Table 1 rows: one per corpus (and per dataset/domain inside a corpus that mixes several)."""
    from .stats import corpus_stats

    rows: list[dict[str, object]] = []
    for name, docs in corpora.items():
        rows += [s.as_row() for s in corpus_stats(docs, name=name, strict=strict)]
    return rows


@dataclass
class PrmuTable:
    """Table 2: the evaluation result, its significance tests against the baseline, and flat rows."""

    baseline: str
    result: Any
    significance: list[Any]
    rows: list[dict[str, object]]


def prmu_rows(gold_docs: Iterable[Document], systems: Mapping[str, Mapping[str, Sequence[str]]], *,
              rounds: int = 10_000, strict: bool = False) -> PrmuTable:
    """Table 2: PRMU F1@Q / R@Q per system and group, † marker and ratio against the first (baseline) system."""
    from .prmu import MAIN_METRICS, evaluate, significance_table

    if not systems:
        raise ConfigError("Table 2 needs at least one --pred file")
    result = evaluate(gold_docs, systems, strict=strict)
    baseline = next(iter(systems))
    sig = significance_table(result, baseline, rounds=rounds) if len(systems) > 1 else []
    by = {(s.b, s.metric): s for s in sig}
    rows: list[dict[str, object]] = []
    for group, ids in result.groups.items():
        subset = None if group == "all" else ids
        for name, scores in result.systems.items():
            for m in MAIN_METRICS:
                v, n = scores.mean(m, subset)
                base, _ = result.systems[baseline].mean(m, subset)
                s = by.get((name, m)) if group == "all" else None  # the tests are over all documents only
                ratio = v / base if base and not math.isnan(base) and not math.isnan(v) else None
                rows.append({"group": group, "system": name, "metric": m, "value": _clean(v), "n": n,
                             "ratio_to_baseline": ratio, "p_randomization": s.p_randomization if s else None,
                             "marker": s.marker() if s else ""})
    return PrmuTable(baseline, result, sig, rows)


def _ratio_markdown(t: PrmuTable) -> str:
    from .tables import METRIC_LABELS

    metrics = list(dict.fromkeys(str(r["metric"]) for r in t.rows))
    head = ["system"] + [f"{METRIC_LABELS.get(m, m)} ÷ {t.baseline}" for m in metrics]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * len(metrics)) + "|"]
    for name in t.result.systems:
        if name == t.baseline:
            continue
        cells = [name]
        for m in metrics:
            r = next(r for r in t.rows if r["group"] == "all" and r["system"] == name and r["metric"] == m)
            cells.append(num(r["ratio_to_baseline"]) + str(r["marker"]))  # type: ignore[arg-type]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _hosts(records: Sequence[StageRecord]) -> list[str]:
    seen: dict[tuple[str, str], HostFacts] = {}
    for r in records:
        seen.setdefault((r.device, json.dumps(asdict(r.host), sort_keys=True)), r.host)
    out = []
    for (device, _), h in seen.items():
        gpu = f", GPU {h.gpu}" if h.gpu else ""
        out.append(f"{device}: {h.cpu_model or 'unknown CPU'} ({h.cpu_count} threads, {h.ram_gb:g} GiB RAM{gpu}), "
                   f"{h.os}, Python {h.python}, esrank {h.esrank_version}"
                   + (f", codecarbon {h.codecarbon_version}" if h.codecarbon_version else ""))
    return out


def _cost_notes(summary: CostSummary, records: Sequence[StageRecord]) -> list[str]:
    notes = []
    prices = sorted({r.price_per_hour for r in records})
    notes.append("Dollars = wall hours × " + ", ".join(f"${p:g}/h" for p in prices) + " per device.")
    grids = sorted({r.grid for r in records if r.grid})
    if grids:
        notes.append("CO2 = energy × the grid carbon intensity " + "; ".join(grids) + " (codecarbon's offline data: "
                     "the country of --country-iso or of codecarbon's configuration, else its world average).")
    if not summary.carbon:
        notes.append("Energy and CO2 were not measured (--no-carbon, or no --cost-log): time and dollars only.")
    elif any(r.kwh is None for r in records):
        n = sum(1 for r in records if r.kwh is None)
        notes.append(f"{n} of {len(records)} stage records carry no energy figure (run without carbon tracking).")
    if summary.estimated:
        methods = sorted({r.energy_method for r in records if r.estimated and r.energy_method})
        notes.append("\\* Energy and CO2 marked * are codecarbon *estimates*: no hardware power counter could be "
                     "read, so CPU power is modelled from CPU load × TDP and RAM power from a model "
                     f"({'; '.join(methods) or 'estimated'}).")
    return notes


def write_report(out_dir: str | Path, *, records: Sequence[StageRecord] = (),
                 gold_docs: Iterable[Document] | None = None,
                 systems: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
                 corpora: Mapping[str, Iterable[Document]] | None = None,
                 documents: int = DEFAULT_EXTRAPOLATION_DOCS, one_off: Iterable[str] = ONE_OFF_STAGES,
                 rounds: int = 10_000, strict: bool = False, title: str = "esrank report") -> ReportFiles:
    """Write report.md and the tables (CSV + JSON) and plots (PNG) of whatever inputs are given."""
    if not records and not systems and not corpora:
        raise ConfigError("nothing to report: give a cost log, predictions with their gold file, or a corpus")
    if systems and gold_docs is None:
        raise ConfigError("--pred needs --gold (the documents with their reference keyphrases)")
    if documents < 0:
        raise ConfigError(f"the number of documents to extrapolate to must be >= 0, not {documents}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(out, out / "report.md")
    md = [f"# {title}", ""]

    if corpora:
        rows = corpus_rows(corpora, strict=strict)
        files.tables["table1_corpus"] = _write_table(out, "table1_corpus", rows)
        md += ["## Table 1: corpus statistics", "", _md_table(rows), "",
               "tokens/doc, kp/doc and tokens/kp are mean ± standard deviation; %P %R %M %U the share of "
               "keyphrases that are present, reordered, mixed, unseen.", ""]

    if systems and gold_docs is not None:
        from .tables import prmu_plot, result_grid, significance_grid

        t2 = prmu_rows(gold_docs, systems, rounds=rounds, strict=strict)
        files.tables["table2_prmu"] = _write_table(out, "table2_prmu", t2.rows)
        md += ["## Table 2: PRMU scores per system", "",
               "F1@Q for present keyphrases, R@Q for reordered, mixed, unseen and all absent ones (× 100). "
               f"† marks p < 0.05 against the baseline **{t2.baseline}** (paired randomization test).", "",
               result_grid(t2.result, significance=t2.significance, markdown=True), ""]
        if t2.significance:
            md += [f"Ratios to {t2.baseline} (all documents):", "", _ratio_markdown(t2), "",
                   significance_grid(t2.significance, markdown=True), ""]
        for sc in t2.result.systems.values():
            if sc.missing or sc.unknown:
                md += [f"- {sc.name}: {sc.missing} gold documents without prediction (scored as empty), "
                       f"{sc.unknown} predicted ids not in the gold file (ignored)"]
        files.plots.append(prmu_plot(t2.result, out / "prmu.png"))
        md += ["", "![PRMU scores per system](prmu.png)", ""]

    if records:
        summary = summarise(records)
        ex = extrapolate(summary, documents, one_off=frozenset(one_off))
        files.tables["table3_cost"] = _write_table(out, "table3_cost", table3_rows(summary), TABLE3_COLUMNS)
        files.tables["extrapolation"] = _write_table(out, "extrapolation", extrapolation_rows(ex),
                                                     EXTRAPOLATION_COLUMNS)
        files.notes = _cost_notes(summary, records)
        md += ["## Table 3: time, energy, CO2 and cost per stage", "", table3_markdown(summary), "",
               *[f"- {n}" for n in files.notes], "", "**Per document:**", "",
               *[f"- {line}" for line in per_document_lines(ex)], "",
               f"**Extrapolation to {documents:,} documents** (one-off stages counted once, the others scaled "
               "by their measured cost per document):", "", extrapolation_markdown(ex), ""]
        skipped = sorted({s for e in ex for s in e.skipped_stages})
        if skipped:
            md += [f"Stages left out of the extrapolation (no item count recorded): {', '.join(skipped)}.", ""]
        files.plots.append(cost_plot(summary, out / "cost_stages.png"))
        md += ["![Cost per stage, stacked per approach](cost_stages.png)", "", "Hosts:", "",
               *[f"- {h}" for h in _hosts(records)], ""]

    files.markdown.write_text("\n".join(md).rstrip("\n") + "\n", encoding="utf-8")
    return files
