"""``esrank vocab``: index documents with a controlled vocabulary (thesaurus) and evaluate the indexing."""
from __future__ import annotations

import json
from typing import Any

import click

from .common import (check_outputs, chosen_format, data_argument, echo_err, fields_from, input_options, output_format_option, read_input,
                     reader_from)


@click.group("vocab")
def vocab() -> None:
    """Controlled-vocabulary (thesaurus, MeSH style) indexing: descriptors, qualifiers, pairs.

    \b
    esrank vocab index docs.jsonl --thesaurus mesh.json --out preds.jsonl
    esrank vocab evaluate --gold gold.jsonl --pred preds.jsonl
    The thesaurus JSON format is described in docs/vocabulary.md.
    """


_thesaurus = click.option("--thesaurus", "-t", required=True, envvar="ESRANK_THESAURUS",
                          type=click.Path(dir_okay=False),
                          help="Thesaurus file: JSON, or SKOS in an RDF syntax (.ttl, .rdf, .nt, .jsonld, ...).")
_lang = click.option("--lang", envvar="ESRANK_LANG", default=None,
                     help="Language of the documents (en, fr, de, es, ...; default: the thesaurus's).")


@vocab.command("index")
@_thesaurus
@data_argument()
@click.option("--out", required=True, type=click.Path(dir_okay=False, allow_dash=True),
              help="Predictions JSONL to write (- for stdout).")
@_lang
@click.option("--df", "df_path", envvar="ESRANK_VOCAB_DF", type=click.Path(dir_okay=False), default=None,
              help="Document frequencies JSON (from 'esrank vocab df') for tf-idf.")
@click.option("--collection", type=click.Path(dir_okay=False), default=None,
              help="Compute document frequencies from this corpus first (instead of --df).")
@click.option("--history", "history_path", envvar="ESRANK_VOCAB_HISTORY", type=click.Path(dir_okay=False),
              default=None, help="Pair history: a JSON file from 'esrank vocab history', or gold records (JSONL).")
@click.option("--fields", "field_spec", envvar="ESRANK_VOCAB_FIELDS", default="title=2,text=1", show_default=True,
              help="Fields to match and their weights; other names are meta fields (e.g. headings=1.5).")
@click.option("--min-terms", default=1, show_default=True, envvar="ESRANK_VOCAB_MIN_TERMS",
              help="Keep at least this many descriptors.")
@click.option("--max-terms", default=10, show_default=True, envvar="ESRANK_VOCAB_MAX_TERMS",
              help="Keep at most this many descriptors.")
@click.option("--major-ratio", default=0.5, show_default=True, envvar="ESRANK_VOCAB_MAJOR_RATIO",
              help="A kept heading is major when its score reaches this fraction of the top score.")
@click.option("--history-filter/--no-history-filter", default=True, show_default=True,
              envvar="ESRANK_VOCAB_HISTORY_FILTER",
              help="With --history: keep only descriptor/qualifier pairs assigned before.")
@click.option("--history-prior", type=click.FloatRange(min=0), default=0.0, show_default=True,
              envvar="ESRANK_VOCAB_HISTORY_PRIOR",
              help="With --history: multiply a pair's score by 1 + this × P(qualifier | descriptor) (0: no prior).")
@input_options
def index_cmd(thesaurus: str, data: str, out: str, lang: str | None, df_path: str | None, collection: str | None,
              history_path: str | None, field_spec: str, min_terms: int, max_terms: int, major_ratio: float,
              history_filter: bool, history_prior: float, **kw: Any) -> None:
    """Index documents with a thesaurus: ranked descriptors and descriptor/qualifier pairs with evidence."""
    from ..vocabulary.indexer import IndexConfig, build_indexer, index_file

    fmt, on_error, rejects = kw.pop("fmt"), kw.pop("on_error"), kw.pop("rejects")
    fields = fields_from(kw)
    check_outputs({"--out": out, "--rejects": rejects}, {"DATA": data, "--thesaurus": thesaurus, "--df": df_path,
                                                        "--collection": collection, "--history": history_path})
    config = IndexConfig(IndexConfig.parse_weights(field_spec), min_terms=min_terms, max_terms=max_terms,
                         major_ratio=major_ratio, history_filter=history_filter, history_prior=history_prior)
    indexer = build_indexer(thesaurus, language=lang, config=config, df_path=df_path, collection=collection,
                            history_path=history_path, fields=fields)
    run = index_file(data, out, indexer, fields=fields, fmt=fmt, on_error=on_error, rejects=rejects)
    echo_err(f"vocab index: {run.stats.summary()}; wrote {run.written} documents to {out}, "
             f"{run.headings} headings kept, {run.without_terms} documents without any term, "
             f"{run.rejected_pairs} pairs rejected as not allowed")


@vocab.command("df")
@_thesaurus
@data_argument()
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Document frequencies JSON to write.")
@_lang
@click.option("--fields", "field_spec", envvar="ESRANK_VOCAB_FIELDS", default="title=2,text=1", show_default=True,
              help="Fields to match (as for 'vocab index'; the weights are not used here).")
@input_options
def df_cmd(thesaurus: str, data: str, out: str, lang: str | None, field_spec: str, **kw: Any) -> None:
    """Count, for each descriptor, the documents of a collection that mention it (for tf-idf)."""
    from ..vocabulary.automaton import Matcher
    from ..vocabulary.collection import DocumentFrequencies
    from ..vocabulary.indexer import IndexConfig
    from ..vocabulary.thesaurus import load_thesaurus

    with read_input(reader_from(kw), data, outputs={"--out": out}, inputs={"--thesaurus": thesaurus}) as docs:
        freqs = DocumentFrequencies.from_documents(docs, Matcher(load_thesaurus(thesaurus, lang)),
                                                   list(IndexConfig.parse_weights(field_spec)))
    freqs.save(out)
    echo_err(f"vocab df: {len(freqs.counts)} descriptors seen in {freqs.n_docs} documents")


@vocab.command("history")
@click.option("--gold", required=True, type=click.Path(dir_okay=False),
              help="Indexed records (JSONL with descriptors/pairs or keyphrases \"D/Q\").")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Pair history JSON to write.")
@click.option("--thesaurus", "-t", envvar="ESRANK_THESAURUS", type=click.Path(dir_okay=False), default=None,
              help="Resolve labels and synonyms in the records to ids (needed when the records name concepts by "
                   "label: the indexer names pairs by id).")
def history_cmd(gold: str, out: str, thesaurus: str | None) -> None:
    """Learn descriptor/qualifier pair frequencies from already indexed records."""
    from ..vocabulary.collection import PairHistory
    from ..vocabulary.thesaurus import load_thesaurus

    h = PairHistory.from_gold(gold, load_thesaurus(thesaurus) if thesaurus else None)
    h.save(out)
    echo_err(f"vocab history: {len(h.pairs)} distinct pairs over {len(h.descriptors)} descriptors")


@vocab.command("from-keyphrases")
@data_argument()
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Thesaurus JSON to write.")
@click.option("--lang", default="en", show_default=True, help="Language recorded in the thesaurus.")
@click.option("--min-count", default=1, show_default=True, help="Keep keyphrases given at least this often.")
@input_options
def from_keyphrases_cmd(data: str, out: str, lang: str, min_count: int, **kw: Any) -> None:
    """Build a flat vocabulary from a corpus's keyphrases (one descriptor per stemmed form)."""
    from ..outputs import write_text
    from ..vocabulary.thesaurus import thesaurus_from_keyphrases

    with read_input(reader_from(kw), data, outputs={"--out": out}) as docs:
        th = thesaurus_from_keyphrases((d.keyphrases for d in docs), language=lang, min_count=min_count)
    write_text(out, json.dumps(th.to_json(), ensure_ascii=False, indent=1))
    echo_err(f"vocab from-keyphrases: {len(th.descriptors)} descriptors written to {out}")


@vocab.command("evaluate")
@click.option("--gold", required=True, type=click.Path(dir_okay=False),
              help="Gold JSONL: {id, descriptors, pairs} or {id, keyphrases: [\"D\", \"D/Q\"]}.")
@click.option("--pred", required=True, type=click.Path(dir_okay=False), help="Output of 'esrank vocab index'.")
@click.option("--thesaurus", "-t", envvar="ESRANK_THESAURUS", type=click.Path(dir_okay=False), default=None,
              help="Resolve labels and synonyms to ids with this thesaurus (gold by id, predictions by label).")
@output_format_option(choices=("table", "json"), json_alias=True)
def evaluate_cmd(gold: str, pred: str, thesaurus: str | None, out_format: str) -> None:
    """Mean cut-off rank, P/R/F1 at the cut-off, P@2 and P@4, with pairs and without pairs (the paper's "/").

    \b
    with pairs     the indexer's headings (a pair is right when descriptor and qualifier both are)
    without pairs  the same run with its pair headings removed, scored against the same gold
    relaxed        pairs reduced to their descriptor on both sides (not one of the paper's figures)
    """
    from dataclasses import asdict

    from ..vocabulary.evaluate import evaluate_indexing
    from ..vocabulary.thesaurus import load_thesaurus

    result = evaluate_indexing(gold, pred, load_thesaurus(thesaurus) if thesaurus else None)
    click.echo(json.dumps(asdict(result), indent=1) if chosen_format(out_format) == "json" else result.table())


COMMANDS = [vocab]
