"""`esrank evaluate` and `esrank stats`."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..corpus import ReadStats, RejectSink, read_documents
from ..errors import ConfigError
from ..evaluation.prmu import MAIN_METRICS, evaluate, significance_table
from ..evaluation.stats import corpus_stats
from ..evaluation.tables import grid, prmu_plot, result_csv, result_grid, result_json, significance_grid
from ..predictions import read_predictions
from .common import echo_err, fields_from, input_options


def load_systems(paths: tuple[str, ...], names: tuple[str, ...]) -> dict[str, dict[str, list[str]]]:
    """Read prediction files into {system name: {doc id: ranked phrases}} (names default to file stems)."""
    if names and len(names) != len(paths):
        raise ConfigError(f"--name given {len(names)} times for {len(paths)} --pred files")
    systems: dict[str, dict[str, list[str]]] = {}
    for i, p in enumerate(paths):
        name = names[i] if names else Path(p).stem
        if name in systems:
            name = f"{name}#{i + 1}"
        systems[name] = {pred.id: pred.phrases for pred in read_predictions(p)}
    return systems


@click.command("evaluate")
@click.option("--gold", required=True, type=click.Path(dir_okay=False), help="Gold documents with keyphrases.")
@click.option("--pred", "preds", multiple=True, required=True, type=click.Path(dir_okay=False),
              help="Predictions JSONL ({id, keyphrases}); repeat to compare systems (first = baseline).")
@click.option("--name", "names", multiple=True, help="Display name of each --pred, in order.")
@click.option("--strict", is_flag=True, envvar="ESRANK_STRICT_PRMU",
              help="Strict PRMU: a present match may not cross punctuation or a sentence boundary "
                   "(default: it may, the common convention).")
@click.option("--all-metrics", is_flag=True, help="Also P/R/F1 at 5, 10, O and M for present, absent and all.")
@click.option("--format", "out_format", type=click.Choice(["table", "json", "csv", "markdown"]), default="table",
              show_default=True, help="Output format on stdout.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Write a PRMU × systems bar chart (PNG).")
@click.option("--rounds", default=10_000, show_default=True, help="Randomization rounds of the significance test.")
@input_options
def evaluate_cmd(gold: str, preds: tuple[str, ...], names: tuple[str, ...], strict: bool, all_metrics: bool,
                 out_format: str, plot: str | None, rounds: int, fmt: str | None, on_error: str,
                 rejects: str | None, **kw: Any) -> None:
    """Score predictions with the PRMU scheme: F1@Q for present, R@Q for reordered, mixed, unseen and all absent.

    With several --pred files, each system after the first is tested against the first (paired randomization,
    Wilcoxon and t-test); † marks p < 0.05 (randomization).
    """
    fields = fields_from(kw)
    systems = load_systems(preds, names)
    stats = ReadStats()
    with RejectSink(rejects) as sink:
        docs = read_documents(gold, fields=fields, fmt=fmt, on_error=on_error, rejects=sink,  # type: ignore[arg-type]
                              stats=stats)
        result = evaluate(docs, systems, strict=strict)
    metrics = result.metrics() if all_metrics else list(MAIN_METRICS)
    sig = significance_table(result, next(iter(systems)), rounds=rounds) if len(systems) > 1 else []
    if out_format == "json":
        click.echo(result_json(result, sig))
    elif out_format == "csv":
        click.echo(result_csv(result), nl=False)
    else:
        md = out_format == "markdown"
        click.echo(result_grid(result, metrics, significance=sig, markdown=md))
        if sig:
            click.echo("\n" + significance_grid(sig, markdown=md))
    echo_err(f"gold {gold}: {stats.summary()}")
    for s in result.systems.values():
        if s.missing or s.unknown:
            echo_err(f"{s.name}: {s.missing} gold documents without prediction (scored as empty), "
                     f"{s.unknown} predicted ids not in the gold file (ignored)")
    if plot:
        prmu_plot(result, plot)
        echo_err(f"plot written to {plot}")


@click.command("stats")
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("--strict", is_flag=True, help="Strict PRMU classes (see `esrank evaluate --help`).")
@click.option("--format", "out_format", type=click.Choice(["table", "json", "csv", "markdown"]), default="table",
              show_default=True)
@input_options
def stats_cmd(data: str, strict: bool, out_format: str, fmt: str | None, on_error: str, rejects: str | None,
              **kw: Any) -> None:
    """Corpus statistics (Table 1): documents, tokens/doc, vocabulary, keyphrases/doc, tokens/keyphrase, PRMU %."""
    import csv
    import io
    import json

    fields = fields_from(kw)
    rs = ReadStats()
    with RejectSink(rejects) as sink:
        rows = [s.as_row() for s in corpus_stats(
            read_documents(data, fields=fields, fmt=fmt, on_error=on_error, rejects=sink, stats=rs),  # type: ignore[arg-type]
            name=Path(data).stem, strict=strict)]
    if out_format == "json":
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
    elif out_format == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        click.echo(buf.getvalue(), nl=False)
    else:
        click.echo(grid([list(r.values()) for r in rows], list(rows[0]), markdown=out_format == "markdown"))
    echo_err(f"{data}: {rs.summary()}")


COMMANDS = [evaluate_cmd, stats_cmd]
