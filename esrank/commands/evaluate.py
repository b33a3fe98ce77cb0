"""`esrank evaluate` and `esrank stats`."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..errors import ConfigError, InputError
from ..evaluation.prmu import MAIN_METRICS, evaluate, significance_table
from ..evaluation.stats import corpus_stats
from ..evaluation.tables import grid, prmu_plot, result_csv, result_grid, result_json, significance_grid
from ..predictions import read_predictions
from .common import (check_outputs, documents_input, echo_err, input_options, output_format_option, read_input,
                     reader_from, report_reads, warn)


def load_systems(paths: tuple[str, ...], names: tuple[str, ...]) -> dict[str, dict[str, list[str]]]:
    """Read prediction files into {system name: {doc id: ranked phrases}} (names default to file stems)."""
    if names and len(names) != len(paths):
        raise ConfigError(f"--name given {len(names)} times for {len(paths)} --pred files")
    systems: dict[str, dict[str, list[str]]] = {}
    for i, p in enumerate(paths):
        name = names[i] if names else Path(p).stem
        if name in systems:
            name = f"{name}#{i + 1}"
        preds: dict[str, list[str]] = {}
        duplicates: list[str] = []
        for pred in read_predictions(p):
            if pred.id in preds:
                duplicates.append(pred.id)
            preds[pred.id] = pred.phrases
        if duplicates:
            warn(f"{p}: {len(duplicates)} duplicate ids (e.g. {duplicates[0]!r}); the last line of each id is used")
        systems[name] = preds
    return systems


def _with_keyphrases(docs: Any, source: str, counts: dict[str, int]) -> Any:
    """Pass gold documents through, counting those without keyphrases."""
    for d in docs:
        counts["all"] += 1
        if not d.keyphrases:
            counts["without"] += 1
        yield d


@click.command("evaluate")
@click.option("--gold", required=True, type=click.Path(dir_okay=False), help="Gold documents with keyphrases.")
@click.option("--pred", "preds", multiple=True, required=True, type=click.Path(dir_okay=False),
              help="Predictions JSONL ({id, keyphrases}); repeat to compare systems (first = baseline).")
@click.option("--name", "names", multiple=True, help="Display name of each --pred, in order.")
@click.option("--strict", is_flag=True, envvar="ESRANK_STRICT_PRMU",
              help="Strict PRMU: a present match may not cross punctuation or a sentence boundary "
                   "(default: it may, the common convention).")
@click.option("--all-metrics", is_flag=True, help="Also P/R/F1 at 5, 10, O and M for present, absent and all.")
@output_format_option()
@click.option("--plot", type=click.Path(dir_okay=False), help="Write a PRMU × systems bar chart (PNG).")
@click.option("--rounds", default=10_000, show_default=True, type=click.IntRange(min=1), envvar="ESRANK_ROUNDS",
              help="Randomization rounds of the significance test (at least 1).")
@input_options
def evaluate_cmd(gold: str, preds: tuple[str, ...], names: tuple[str, ...], strict: bool, all_metrics: bool,
                 out_format: str, plot: str | None, rounds: int, **kw: Any) -> None:
    """Score predictions with the PRMU scheme: F1@Q for present, R@Q for reordered, mixed, unseen and all absent.

    With several --pred files, each system after the first is tested against the first (paired randomization,
    Wilcoxon and t-test); † marks p < 0.05 (randomization).
    """
    reader = reader_from(kw)
    check_outputs({"--plot": plot}, {"--gold": gold, **{f"--pred {p}": p for p in preds}}, reader)
    systems = load_systems(preds, names)
    counts = {"all": 0, "without": 0}
    with reader:
        result = evaluate(_with_keyphrases(reader.read(gold), gold, counts), systems, strict=strict)
    if counts["all"] and counts["without"] == counts["all"]:
        raise InputError("no gold document has keyphrases (looked for fields "
                         f"{', '.join(reader.fields.keyphrases)}; use --keyphrases-field)", source=gold)
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
    report_reads(reader)
    if counts["without"]:
        warn(f"{gold}: {counts['without']} of {counts['all']} gold documents have no keyphrases "
             "(they count in the absent/present means as empty)")
    for s in result.systems.values():
        if s.missing or s.unknown:
            echo_err(f"{s.name}: {s.missing} gold documents without prediction (scored as empty), "
                     f"{s.unknown} predicted ids not in the gold file (ignored)")
    if plot:
        prmu_plot(result, plot)
        echo_err(f"plot written to {plot}")


@click.command("stats")
@documents_input(require_keyphrases=False)
@click.option("--strict", is_flag=True, envvar="ESRANK_STRICT_PRMU", help="Strict PRMU classes (see `esrank evaluate --help`).")
@output_format_option()
def stats_cmd(data: str, reader: Any, strict: bool, out_format: str) -> None:
    """Corpus statistics (Table 1): documents, tokens/doc, vocabulary, keyphrases/doc, tokens/keyphrase, PRMU %.

    With --format json the figures are numbers (means and standard deviations in separate fields).
    """
    import csv
    import io
    import json

    with read_input(reader, data) as docs:
        stats = corpus_stats(docs, name="stdin" if data == "-" else Path(data).stem, strict=strict)
    if out_format == "json":
        click.echo(json.dumps([s.as_record() for s in stats], indent=2, ensure_ascii=False))
        return
    rows = [s.as_row() for s in stats]
    if out_format == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        click.echo(buf.getvalue(), nl=False)
    else:
        click.echo(grid([list(r.values()) for r in rows], list(rows[0]), markdown=out_format == "markdown"))


COMMANDS = [evaluate_cmd, stats_cmd]
