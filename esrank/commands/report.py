"""`esrank report`: Tables 1–3 with plots, from a cost log, predictions and corpora."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..cost import ONE_OFF_STAGES, STAGES, read_records
from ..errors import ConfigError
from ..evaluation.report import DEFAULT_EXTRAPOLATION_DOCS, write_report
from .common import check_outputs, echo_err, input_options, reader_from, report_reads


@click.command("report")
@click.option("--cost-log", "cost_logs", multiple=True, type=click.Path(), envvar="ESRANK_COST_LOG",
              help="Cost log directory (or its cost.jsonl) written by --cost-log; repeat to merge several.")
@click.option("--gold", type=click.Path(dir_okay=False, exists=True),
              help="Gold documents with keyphrases (for Table 2).")
@click.option("--pred", "preds", multiple=True, type=click.Path(dir_okay=False, exists=True),
              help="Predictions JSONL; repeat to compare systems (the first is the baseline of tests and ratios).")
@click.option("--name", "names", multiple=True, help="Display name of each --pred, in order.")
@click.option("--data", "corpora", multiple=True, type=click.Path(dir_okay=False, exists=True),
              help="Corpus for Table 1 (statistics); repeat for several corpora.")
@click.option("--out", required=True, type=click.Path(file_okay=False), envvar="ESRANK_REPORT_DIR",
              help="Directory to write report.md, the tables (CSV + JSON) and the plots (PNG) to.")
@click.option("--documents", default=DEFAULT_EXTRAPOLATION_DOCS, show_default=True, type=click.IntRange(min=0),
              envvar="ESRANK_EXTRAPOLATE_DOCS", help="Extrapolate each approach's cost to this many documents.")
@click.option("--one-off-stage", "one_off", multiple=True, type=click.Choice(STAGES), metavar="STAGE",
              help="A stage paid once, not per document, in the extrapolation; repeat "
                   f"(default: {', '.join(sorted(ONE_OFF_STAGES))}).")
@click.option("--strict", is_flag=True, envvar="ESRANK_STRICT_PRMU", help="Strict PRMU classes.")
@click.option("--rounds", default=10_000, show_default=True, type=click.IntRange(min=1),
              help="Randomization rounds of the significance test.")
@input_options
def report_cmd(cost_logs: tuple[str, ...], gold: str | None, preds: tuple[str, ...], names: tuple[str, ...],
               corpora: tuple[str, ...], out: str, documents: int, one_off: tuple[str, ...], strict: bool,
               rounds: int, **kw: Any) -> None:
    """Write a Markdown report with the same tables as CSV/JSON, and PNG plots.

    \b
    Table 1  corpus statistics of each --data corpus
    Table 2  PRMU F1@Q / R@Q of each --pred system against --gold, † and ratios against the first
    Table 3  time, energy, CO2 and dollars per stage and per approach from --cost-log, the cost of one
             document, and the cost extrapolated to --documents documents
    """
    from .evaluate import load_systems

    if (gold is None) != (not preds):
        raise ConfigError("--gold and --pred go together (Table 2 scores predictions against gold keyphrases)")
    reader = reader_from(kw)
    check_outputs({}, {"--gold": gold, **{f"--pred {p}": p for p in preds}, **{f"--data {p}": p for p in corpora}},
                  reader)
    records = [r for log in cost_logs for r in read_records(log)]
    systems = load_systems(preds, names) if preds else None
    with reader:
        files = write_report(
            out, records=records, gold_docs=reader.read(gold) if gold else None, systems=systems,
            corpora={Path(p).stem: reader.read(p) for p in corpora} or None, documents=documents,
            one_off=one_off or ONE_OFF_STAGES, rounds=rounds, strict=strict)
    report_reads(reader)
    if records:
        echo_err(f"{len(records)} cost records from {', '.join(cost_logs)}")
    for p in files.all_paths():
        click.echo(str(p))


COMMANDS = [report_cmd]
