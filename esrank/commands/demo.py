"""``esrank demo``: the whole pipeline on the bundled sample corpus, on the embedded index."""
from __future__ import annotations

from typing import Any

import click

from ..cost import cost_options, tracker_from_options
from .common import data_argument, echo_err
from .ranking import DEFAULT_K


@click.command("demo")
@click.option("--out", type=click.Path(file_okay=False), default="esrank-demo", show_default=True,
              envvar="ESRANK_DEMO_OUT", help="Directory for the index, model, predictions and evaluation.")
@data_argument(required=False)
@click.option("--epochs", type=click.IntRange(1, 100), default=3, show_default=True)
@click.option("--batch-size", type=click.IntRange(2, 4096), default=64, show_default=True)
@click.option("-k", "k", type=click.IntRange(1, 100), default=DEFAULT_K, envvar="ESRANK_K", show_default=True,
              help="Neighbours whose keyphrases are the candidates (the `esrank rank` default).")
@click.option("--threads", type=click.IntRange(1, 1024), default=None, envvar="ESRANK_THREADS",
              help="CPU threads for torch.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False), default=None,
              help="Also write the full report (tables and plots) here; with --cost-log it includes the costs.")
@cost_options
def demo_cmd(out: str, data: str | None, epochs: int, batch_size: int, k: int, threads: int | None,
             report_dir: str | None, **kw: Any) -> None:
    """Run the main job on the embedded index: index → fine-tune → rank → PRMU evaluation.

    DATA: a corpus of your own instead of the sample (documents with keyphrases; a `domain` field is used to
    stratify the 80/20 split).

    \b
    1. split the bundled sample corpus (90 documents, 3 domains) into 72 indexed/training and 18 held-out documents;
    2. load the 72 into an embedded BM25 index (bm25s, on disk);
    3. fine-tune all-MiniLM-L6-v2 with the masked MNR loss (a few minutes on a CPU) on all but a validation share,
       whose neighbours then fit the weight of the mix score;
    4. rank every neighbour candidate of the held-out documents four ways: neighbour vote, zero-shot, fine-tuned,
       and mix (fine-tuned cosine mixed with the normalised neighbour vote);
    5. print the PRMU table with significance tests against the neighbour vote.
    """
    from ..demo import run_demo
    from ..evaluation.tables import result_grid, significance_grid

    tracker = tracker_from_options(kw)
    res = run_demo(out, data=data, epochs=epochs, batch_size=batch_size, k=k, threads=threads, tracker=tracker,
                   say=echo_err)
    click.echo(result_grid(res.result, significance=res.significance))
    click.echo("\n" + significance_grid(res.significance))
    if report_dir:
        from ..corpus import read_documents
        from ..evaluation.report import write_report
        from ..predictions import read_predictions

        files = write_report(report_dir, records=tracker.records,
                             gold_docs=list(read_documents(res.out_dir / "test.jsonl")),
                             systems={n: {p.id: p.phrases for p in read_predictions(path)}
                                      for n, path in res.predictions.items()},
                             corpora={"sample": read_documents(res.out_dir / "train.jsonl")})
        echo_err(f"report: {files.markdown}")
    echo_err(f"outputs in {res.out_dir}/: train.jsonl, test.jsonl, index/, model/, predictions/*.jsonl, "
             "evaluation.json")
    echo_err(f"evaluate again: esrank evaluate --gold {res.out_dir}/test.jsonl "
             + " ".join(f"--pred {p}" for p in res.predictions.values()))


COMMANDS = [demo_cmd]
