"""``esrank enrich`` (write predicted keyphrases into a live index) and ``esrank eval-retrieval``."""
from __future__ import annotations

import json
from typing import Any

import click

from ..cost import cost_options, tracker_from_options
from ..errors import ConfigError
from .common import chosen_format, echo_err, output_format_option
from .ranking import DEFAULT_K, DEFAULT_METHOD, METHOD_CHOICES, model_options
from .retrieval import backend_options, backend_options_from


def _fields(value: str, option: str) -> tuple[str, ...]:
    fields = tuple(f.strip() for f in value.split(",") if f.strip())
    if not fields:
        raise ConfigError(f"{option} needs at least one field name")
    return fields


@click.command("enrich")
@click.option("--target-index", required=True, envvar="ESRANK_TARGET_INDEX",
              help="Index (or alias) whose documents get keyphrases; may be the training index itself.")
@backend_options(embedded=False)
@model_options
@click.option("--method", type=click.Choice(list(METHOD_CHOICES)), default=DEFAULT_METHOD, show_default=True,
              envvar="ESRANK_METHOD",
              help="model: the bi-encoder; vote: the neighbour-vote baseline (no model, fast); mix: the "
                   "bi-encoder's cosine mixed with the normalised vote (see esrank rank --help).")
@click.option("--text-fields", default="title,abstract", show_default=True, envvar="ESRANK_TEXT_FIELDS",
              help="Fields of the target documents to read, comma separated (dotted paths work); the first is "
                   "the title. Documents with none of them are skipped and counted.")
@click.option("--field", "field_name", default="esrank", show_default=True, envvar="ESRANK_ENRICH_FIELD",
              help="The one field written: {keyphrases: [{phrase, score, category}], absent, model, version, "
                   "enriched_at, source_hash, scores (rank_features)}. Its mapping (mappings/enrichment.json) is "
                   "added; other fields are never touched.")
@click.option("--only-absent", is_flag=True, help="Keep only keyphrases absent from the text (PRMU R, M, U).")
@click.option("--top-n", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="Keyphrases kept per document.")
@click.option("--min-score", type=float, default=None, help="Drop keyphrases scored below this.")
@click.option("-k", "k", type=click.IntRange(1, 1000), default=DEFAULT_K, envvar="ESRANK_K", show_default=True,
              help="Neighbours whose keyphrases are the candidates.")
@click.option("--query", "query_json", default=None, envvar="ESRANK_ENRICH_QUERY",
              help='Enrich only the documents matching this Query DSL object, e.g. \'{"term": {"lang": "en"}}\'.')
@click.option("--slices", type=click.IntRange(1, 256), default=1, show_default=True, envvar="ESRANK_SLICES",
              help="Parallel workers in this process, each reading its own slice of the point in time.")
@click.option("--slice-id", type=click.IntRange(0), default=0, show_default=True, envvar="ESRANK_SLICE_ID",
              help="The part of the index this machine enriches (0 .. --slice-max - 1).")
@click.option("--slice-max", type=click.IntRange(1, 1024), default=1, show_default=True, envvar="ESRANK_SLICE_MAX",
              help="Number of machines sharing the index (one command per machine, same settings).")
@click.option("--pit-id", envvar="ESRANK_PIT_ID", default=None,
              help="A point in time of the target index opened beforehand and shared by all machines of one run, "
                   "so that their slices split the same snapshot (see docs/enrich.md). Default: this command "
                   "opens its own.")
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=64, show_default=True,
              help="Documents per page, ranking batch and bulk update.")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=None, envvar="ESRANK_RATE",
              help="At most this many documents per second (spares a busy cluster).")
@click.option("--exclude-self/--include-self", default=None,
              help="Drop a document's own id from its neighbours (default: when the target is the training "
                   "index). Use --exclude-self when the target documents were also loaded as training data.")
@click.option("--dry-run", is_flag=True, help="Write nothing (not even the mapping); print sample documents.")
@click.option("--samples", type=click.IntRange(0, 1000), default=3, show_default=True,
              help="Sample documents printed by --dry-run.")
@click.option("--resume", is_flag=True,
              help="After an interruption: do not even read the documents this model and version already enriched.")
@click.option("--allow-wildcards", is_flag=True, envvar="ESRANK_ALLOW_WILDCARDS",
              help="Accept a --target-index pattern (*, ?) or comma list; it may match the training index too.")
@click.option("--install-template", "template_pattern", default=None, envvar="ESRANK_INSTALL_TEMPLATE",
              metavar="PATTERN", help="Also install the enrichment field as a component template composed into an "
                                      "index template for PATTERN (e.g. 'papers-*'), so new indices get it.")
@click.option("--follow", is_flag=True, envvar="ESRANK_FOLLOW",
              help="Keep running: enrich documents as they arrive (or change), sleep when there is nothing to do, "
                   "stop cleanly on SIGTERM/SIGINT. See docs/cluster.md.")
@click.option("--poll-interval", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True,
              envvar="ESRANK_POLL_INTERVAL", help="With --follow: seconds to sleep when no document needs work.")
@click.option("--recheck-interval", type=click.FloatRange(min=0), default=3600.0, show_default=True,
              envvar="ESRANK_RECHECK_INTERVAL",
              help="With --follow: every this many seconds read every document, to redo those whose text changed "
                   "since they were enriched (0: never; new and re-indexed documents are found every round).")
@click.option("--checkpoint", type=click.Path(dir_okay=False), default=None, envvar="ESRANK_CHECKPOINT",
              help="With --follow: a JSON file keeping rounds, totals and the last re-check across restarts.")
@click.option("--force", is_flag=True, help="Enrich again documents already enriched by this model and version.")
@click.option("--enrichment-version", "version", default=None, envvar="ESRANK_ENRICHMENT_VERSION",
              help="Version stamp written with the keyphrases (default: esrank's version + a fingerprint of the "
                   "model and settings). Documents with the same model and version are skipped.")
@cost_options
def enrich_cmd(**kw: Any) -> None:
    """Write predicted keyphrases (present and absent) into the documents of a live index.

    --index names the training index (documents with keyphrases, from `esrank load`) whose neighbours give
    the candidates; --target-index the documents that get them (the same index is fine).

    \b
    esrank enrich --url http://localhost:9200 --target-index papers --index kp --text-fields title,abstract
    Across 4 machines, 2 workers each (one command per machine, N = 0..3, one shared point in time):
      esrank enrich ... --slice-max 4 --slice-id N --slices 2 --pit-id "$PIT"
    Interrupted? Run the same command again with --resume.
    """
    from ..enrich.job import EnrichSettings, enrich_index

    tracker = tracker_from_options(kw)
    options = backend_options_from(kw)
    query = None
    if kw["query_json"]:
        from ..enrich.scan import check_query

        try:
            query = check_query(json.loads(kw["query_json"]))
        except json.JSONDecodeError as e:
            raise ConfigError(f"--query is not valid JSON: {e.msg} at character {e.pos}") from None
    settings = EnrichSettings(
        target_index=kw["target_index"], text_fields=_fields(kw["text_fields"], "--text-fields"),
        field=kw["field_name"], only_absent=kw["only_absent"], top_n=kw["top_n"], min_score=kw["min_score"],
        query=query, k=kw["k"], batch_size=kw["batch_size"], slices=kw["slices"], slice_id=kw["slice_id"],
        slice_max=kw["slice_max"], dry_run=kw["dry_run"], samples=kw["samples"], resume=kw["resume"],
        force=kw["force"], exclude_self=kw["exclude_self"], rate=kw["rate"], version=kw["version"],
        pit_id=kw["pit_id"], allow_wildcards=kw["allow_wildcards"])
    if kw["template_pattern"]:
        from ..enrich.write import install_template
        from ..retrieval.factory import connect

        settings.validate()
        with connect(options) as cluster:
            echo_err(f"esrank: {install_template(cluster, kw['template_pattern'], settings.field)}")
    if kw["follow"]:
        from ..enrich.follow import follow_index

        followed = follow_index(options, settings, method=kw["method"], model=kw["model"], device=kw["device"],
                                precision=kw["precision"], threads=kw["threads"],
                                max_seq_length=kw["max_doc_tokens"], poll_interval=kw["poll_interval"],
                                recheck_interval=kw["recheck_interval"], checkpoint=kw["checkpoint"])
        echo_err(f"esrank: follow stopped after {followed.rounds} rounds: {followed.stats.summary()}")
        if followed.stats.failed:
            raise SystemExit(1)
        return
    report = enrich_index(options, settings, method=kw["method"], model=kw["model"], device=kw["device"],
                          precision=kw["precision"], threads=kw["threads"], tracker=tracker,
                          max_seq_length=kw["max_doc_tokens"])
    for sample in report.samples:
        click.echo(json.dumps(sample, ensure_ascii=False))
    if report.mapping:
        echo_err(f"esrank: {report.mapping}")
    if report.before is not None:
        echo_err(f"esrank: resuming: {report.before} documents were enriched by model {report.model} version "
                 f"{report.version} before this run and were not read again")
    echo_err(f"{'dry run: ' if settings.dry_run else ''}{report.stats.summary(settings.dry_run)}")
    for reason, n in report.stats.failure_reasons()[:10]:
        echo_err(f"esrank: failed: {n} documents: {reason}")
    if report.stats.failed:
        ids = ", ".join(i for i, _ in report.stats.failed[:5])
        echo_err(f"esrank: failed documents (first 5): {ids}; run the command again to retry them")
        raise SystemExit(1)


@click.command("eval-retrieval")
@backend_options(target=True, embedded=False)
@click.option("--topics", required=True, type=click.Path(dir_okay=False, exists=True),
              help="Topics: 'qid<TAB>query' lines, or TREC <top> blocks (<num>, <title>).")
@click.option("--qrels", required=True, type=click.Path(dir_okay=False, exists=True),
              help="TREC qrels: 'qid iter docid rel' lines.")
@click.option("--fields", default="title,abstract", show_default=True,
              help="Original text fields BM25 searches, comma separated (field^boost works).")
@click.option("--with-enrichment", is_flag=True,
              help="Also run the query forms that use the enrichment (mappings/search/): BM25 plus the keyphrase "
                   "field ('enriched'), BM25 plus rank_feature clauses ('rank_feature'); each is compared with "
                   "BM25 alone ('original').")
@click.option("--forms", default=None, envvar="ESRANK_QUERY_FORMS",
              help="The query forms to run, comma separated: bm25, keyphrases, rank_feature (default: all with "
                   "--with-enrichment; rank_feature where the index has rank features).")
@click.option("--keyphrase-boost", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              envvar="ESRANK_KEYPHRASE_BOOST", help="Weight of the keyphrase clause(s) of the enriched forms.")
@click.option("--enrichment-fields", default="esrank.keyphrases.phrase.text", show_default=True,
              help="The enriched field(s) added to --fields by --with-enrichment.")
@click.option("--depth", type=click.IntRange(100, 10_000), default=100, show_default=True,
              help="Documents retrieved per topic (MAP and recall are computed at this depth).")
@click.option("--runs", type=click.Path(file_okay=False), default=None,
              help="Write each run in TREC run format to this directory.")
@output_format_option(choices=("table", "json"), json_alias=True)
def eval_retrieval_cmd(**kw: Any) -> None:
    """Measure BM25 retrieval over the original fields, and with the enriched keyphrases added.

    \b
    esrank eval-retrieval --url http://localhost:9200 --target-index papers \\
        --topics topics.tsv --qrels qrels.txt --fields title,abstract --with-enrichment
    Reports MAP, nDCG@10 and recall@100 per run (query form) and paired tests of each against 'original'.
    """
    from ..evaluation.retrieval import evaluate_retrieval

    options = backend_options_from(kw)
    result = evaluate_retrieval(options, kw["topics"], kw["qrels"], fields=_fields(kw["fields"], "--fields"),
                                enrichment_fields=_fields(kw["enrichment_fields"], "--enrichment-fields")
                                if kw["with_enrichment"] else None, depth=kw["depth"], runs_dir=kw["runs"],
                                forms=_fields(kw["forms"], "--forms") if kw["forms"] else None,
                                boost=kw["keyphrase_boost"])
    as_json = chosen_format(kw["out_format"]) == "json"
    click.echo(json.dumps(result.to_json(), indent=2) if as_json else result.table())
    for warning in result.warnings:
        echo_err(f"esrank: warning: {warning}")


COMMANDS = [enrich_cmd, eval_retrieval_cmd]
