"""Rendering of evaluation results: terminal table, Markdown, CSV, JSON, and the PRMU bar chart."""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Sequence

from .prmu import MAIN_METRICS, EvalResult, Significance

METRIC_LABELS = {"P_F1@Q": "P F1@Q", "R_R@Q": "R R@Q", "M_R@Q": "M R@Q", "U_R@Q": "U R@Q", "Abs_R@Q": "Abs R@Q"}


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return "-" if math.isnan(v) else f"{100 * v:.1f}"
    return str(v)


def grid(rows: Sequence[Sequence[object]], header: Sequence[str], *, markdown: bool = False) -> str:
    """A plain aligned text table, or a Markdown one."""
    cells = [[str(h) for h in header]] + [[str(c) for c in r] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(cells[0]) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in cells[1:]]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    out = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
           for r in cells]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def result_grid(result: EvalResult, metrics: Sequence[str] = MAIN_METRICS, *,
                significance: Sequence[Significance] = (), markdown: bool = False) -> str:
    """One table per group: systems × metrics (×100), with n per metric and † markers (tests over all documents,
    so they mark the overall table only)."""
    marks = {(s.b, s.metric): s.marker() for s in significance}
    metrics = [m for m in metrics if m in result.metrics()]
    blocks = []
    for group, ids in result.groups.items():
        header = ["system"] + [METRIC_LABELS.get(m, m) for m in metrics]
        rows: list[list[object]] = []
        ns: list[object] = []
        for name, s in result.systems.items():
            row: list[object] = [name]
            for m in metrics:
                v, n = s.mean(m, None if group == "all" else ids)
                row.append(_fmt(v) + (marks.get((name, m), "") if group == "all" else ""))
                if len(ns) < len(metrics):
                    ns.append(n)
            rows.append(row)
        rows.append(["n (documents)", *ns])
        title = f"{group} ({len(ids)} documents)" + (", strict PRMU" if result.strict else "")
        blocks.append((f"**{title}**\n\n" if markdown else f"{title}\n") + grid(rows, header, markdown=markdown))
    return "\n\n".join(blocks)


def significance_grid(sig: Sequence[Significance], *, markdown: bool = False) -> str:
    """p-values of the paired tests."""
    rows = [[s.metric, f"{s.b} vs {s.a}", s.n, f"{s.p_randomization:.4f}", f"{s.p_wilcoxon:.4f}",
             f"{s.p_ttest:.4f}", s.marker() or "-"] for s in sig]
    return grid(rows, ["metric", "systems", "n", "p (randomization)", "p (Wilcoxon)", "p (t-test)", "†"],
                markdown=markdown)


def result_json(result: EvalResult, sig: Sequence[Significance] = ()) -> str:
    """Everything as JSON: per group, system and metric the value and n; tests; missing counts."""
    data: dict[str, object] = {
        "strict_prmu": result.strict,
        "results": [{**r, "value": None if isinstance(r["value"], float) and math.isnan(r["value"]) else r["value"]}
                    for r in result.table()],
        "systems": {n: {"missing": s.missing, "unknown": s.unknown} for n, s in result.systems.items()},
        "significance": [s.__dict__ | {"marker": s.marker()} for s in sig],
    }
    return json.dumps(data, indent=2, ensure_ascii=False)


def result_csv(result: EvalResult) -> str:
    """Long CSV: group, system, metric, value, n."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["group", "system", "metric", "value", "n"], lineterminator="\n")
    w.writeheader()
    for r in result.table():
        w.writerow(r)
    return buf.getvalue()


def prmu_plot(result: EvalResult, path: str | Path, *, title: str = "PRMU scores") -> Path:
    """Grouped bar chart: PRMU classes (F1@Q for P, R@Q otherwise) × systems, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    metrics = [m for m in MAIN_METRICS if m in result.metrics()]
    names = list(result.systems)
    width = 0.8 / max(1, len(names))
    fig, ax = plt.subplots(figsize=(1.6 * len(metrics) + 2, 4))
    x = np.arange(len(metrics))
    for i, name in enumerate(names):
        vals = [100 * (result.systems[name].mean(m)[0] if not math.isnan(result.systems[name].mean(m)[0]) else 0)
                for m in metrics]
        ax.bar(x + (i - (len(names) - 1) / 2) * width, vals, width, label=name)
    ax.set_xticks(x, [METRIC_LABELS.get(m, m) for m in metrics])
    ax.set_ylabel("score × 100")
    ax.set_title(title)
    ax.legend(fontsize="small")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
