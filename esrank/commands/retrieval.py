"""``esrank load`` and ``esrank neighbours``, and the backend options other commands reuse."""
from __future__ import annotations

import os
import functools
from typing import Any, Callable

import click

from ..errors import ConfigError
from ..retrieval.cluster import ConnectionConfig
from ..cost import cost_options, tracker_from_options
from ..retrieval.factory import BACKENDS, BackendOptions
from ..retrieval.query import DEFAULT_MAX_TERMS, DEFAULT_POSTINGS_BUDGET
from .common import check_outputs, echo_err, fields_from, input_options, read_input, warn

F = Callable[..., Any]


def backend_options(f: F | None = None, *, target: bool = False, embedded: bool = True) -> Any:
    """Options naming an index and how to reach it, handed to the command as one ``BackendOptions`` (``options``).

    ``target=True``: the index is the one whose documents are evaluated (``--target-index``, ESRANK_TARGET_INDEX;
    ``--index`` accepted one more release with a deprecation line); ``embedded=False``: the embedded index is not
    offered (commands that need a server).
    """
    if f is None:
        return lambda g: backend_options(g, target=target, embedded=embedded)
    index_option = (
        click.option("--target-index", "index", envvar="ESRANK_TARGET_INDEX", default=None,
                     help="Index (or alias) whose documents are searched and evaluated. [required]")
        if target else click.option("--index", "index", envvar="ESRANK_INDEX", required=True,
                                    help="Index name (lowercase)."))
    choices = BACKENDS if embedded else tuple(b for b in BACKENDS if b != "embedded")
    opts = [
        index_option,
        click.option("--backend", type=click.Choice(choices), default="auto", envvar="ESRANK_BACKEND",
                     show_default=True,
                     help="auto: the embedded bm25s index without --url, else detected from the server."),
        click.option("--url", envvar="ESRANK_URL", default=None,
                     help="Elasticsearch/OpenSearch URL, e.g. http://localhost:9200 [ESRANK_URL]."),
        click.option("--path", type=click.Path(file_okay=False), envvar="ESRANK_INDEX_PATH", default=None,
                     help="Directory of the embedded index (default: ~/.local/share/esrank/indexes/INDEX)."),
        click.option("--username", envvar="ESRANK_USERNAME", default=None,
                     help="User for basic auth; the password comes from ESRANK_PASSWORD only. An API key comes "
                          "from ESRANK_API_KEY only."),
        click.option("--ca-certs", type=click.Path(exists=True, dir_okay=False), envvar="ESRANK_CA_CERTS",
                     default=None, help="CA bundle to verify the server's TLS certificate."),
        click.option("--insecure", is_flag=True, envvar="ESRANK_INSECURE",
                     help="Do not verify TLS certificates (verification is on by default)."),
        click.option("--timeout", type=float, default=60.0, envvar="ESRANK_TIMEOUT", show_default=True,
                     help="Seconds per request."),
        click.option("--max-retries", type=click.IntRange(0, 30), default=8, envvar="ESRANK_MAX_RETRIES",
                     show_default=True,
                     help="Retries per request or bulk item on HTTP 429/502/503/504 and connection errors "
                          "(exponential backoff from 0.5 s, capped at 30 s)."),
        click.option("--max-query-terms", type=click.IntRange(1, 1000), default=DEFAULT_MAX_TERMS,
                     envvar="ESRANK_MAX_QUERY_TERMS", show_default=True,
                     help="Most distinct terms in a query document: a longer one keeps its terms of highest "
                          "tf·idf (the index's idf), each weighted by its frequency."),
    ]
    if embedded:
        opts.append(click.option(
            "--postings-budget", type=click.IntRange(0), default=DEFAULT_POSTINGS_BUDGET,
            envvar="ESRANK_POSTINGS_BUDGET", show_default=True,
            help="Embedded index: most postings a query scores (its highest BM25 contributions; the candidates "
                 "are then rescored exactly). Exact whenever a query's terms hold no more. 0: no budget (every "
                 "posting, exhaustive)."))
    if target:
        opts.append(click.option("--index", "index_deprecated", default=None, hidden=True,
                                 help="Deprecated spelling of --target-index."))

    @functools.wraps(f)
    def wrapper(*args: Any, **kw: Any) -> Any:
        old = kw.pop("index_deprecated", None)
        if old is not None:
            if kw.get("index"):
                from ..errors import ConfigError

                raise ConfigError("give the target index once, with --target-index (--index is deprecated here)")
            warn("--index is deprecated for this command and will be removed in the next release: use "
                 "--target-index (--index names the training index elsewhere)")
            kw["index"] = old
        if not kw.get("index"):
            raise click.UsageError("Missing option '--target-index'.")
        kw["options"] = backend_options_from(kw)
        return f(*args, **kw)

    g: F = wrapper
    for o in reversed(opts):
        g = o(g)
    return g


def backend_options_from(kw: dict[str, Any]) -> BackendOptions:
    """Pop the backend options from a command's keyword arguments; secrets come from the environment."""
    if isinstance(kw.get("options"), BackendOptions):  # already built by the backend_options decorator
        options: BackendOptions = kw.pop("options")
        return options
    url, username, ca_certs = kw.pop("url"), kw.pop("username"), kw.pop("ca_certs")
    insecure, timeout, max_retries = kw.pop("insecure"), kw.pop("timeout"), kw.pop("max_retries")
    connection = ConnectionConfig(
        url, api_key=os.environ.get("ESRANK_API_KEY") or None, username=username,
        password=os.environ.get("ESRANK_PASSWORD") or None, ca_certs=ca_certs, verify_certs=not insecure,
        timeout=timeout, max_retries=max_retries) if url else None
    budget = kw.pop("postings_budget", DEFAULT_POSTINGS_BUDGET)
    return BackendOptions(index=kw.pop("index"), backend=kw.pop("backend"), connection=connection,
                          path=kw.pop("path"), max_query_terms=kw.pop("max_query_terms"),
                          postings_budget=budget or None)


@click.command("load")
@click.argument("data", type=click.Path(dir_okay=False, allow_dash=True))
@backend_options
@input_options
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=500, envvar="ESRANK_BATCH_SIZE",
              show_default=True, help="Documents per bulk request.")
@click.option("--resume", is_flag=True, help="Do not send documents the index already holds (after an "
                                               "interrupted load).")
@click.option("--overwrite", is_flag=True, help="Delete and recreate the index first.")
@click.option("--alias", is_flag=True, envvar="ESRANK_ALIAS",
              help="Server only: --index names an alias; load into a new index INDEX-<timestamp> and switch the "
                   "alias to it atomically once the load is complete (searchers never see a missing or partial "
                   "index). The indices the alias pointed to are then deleted, unless --keep-old.")
@click.option("--keep-old", is_flag=True, help="With --alias: keep the indices the alias pointed to before.")
@click.option("--dead-letter", type=click.Path(dir_okay=False), default=None, envvar="ESRANK_DEAD_LETTER",
              help="Where documents that failed to index go, with the reason (default: INDEX.failed.jsonl, "
                   "written only when something fails; INDEX.failed.retry.jsonl when the input is "
                   "INDEX.failed.jsonl). The file can be loaded again.")
@cost_options
def load_cmd(data: str, **kw: Any) -> None:
    """Bulk-load training documents and their keyphrases into an index.

    \b
    Without --url the embedded bm25s index is used (no server needed):
      esrank load train.jsonl --index kp
    With a server (Elasticsearch 8.x or OpenSearch 2.x):
      ESRANK_URL=http://localhost:9200 esrank load train.jsonl --index kp
    Ids come from the data (else a hash of title and text), so loading again never duplicates.
    With --cost-log DIR the load is recorded as the stages tokenisation (embedded index: analysing the
    documents) and index_loading (the rest: reading, writing, building the BM25 index).
    """
    from ..retrieval.embedded import EmbeddedBackend
    from ..retrieval.factory import open_backend
    from ..retrieval.loading import load_corpus

    tracker = tracker_from_options(kw)

    fields = fields_from(kw)
    options = backend_options_from(kw)
    dead_letter = dead_letter_path(kw["dead_letter"], options.index, data)
    check_outputs({"--dead-letter": dead_letter, "--rejects": kw["rejects"]}, {"DATA": data})
    if kw["keep_old"] and not kw["alias"]:
        raise ConfigError("--keep-old goes with --alias")
    backend = open_backend(options, create=True, overwrite=kw["overwrite"], alias=kw["alias"], resume=kw["resume"])
    if isinstance(backend, EmbeddedBackend):  # a server analyses documents while indexing them: one stage
        backend.stage = tracker.stage
    try:
        with tracker.stage("index_loading") as rec:
            report = load_corpus(backend, data, fields=fields, fmt=kw["fmt"], on_error=kw["on_error"],
                                 rejects=kw["rejects"], batch_size=kw["batch_size"], resume=kw["resume"],
                                 dead_letter=dead_letter)
            rec.items = report.indexed
        if kw["alias"] and not report.failed:
            old = backend.finish_alias_load(keep_old=kw["keep_old"])  # type: ignore[attr-defined]
            echo_err(f"esrank: alias '{options.index}' now points to '{report.index}'"
                     + (f" (was {', '.join(old)}{', kept' if kw['keep_old'] else ', deleted'})" if old else ""))
        elif kw["alias"]:
            echo_err(f"esrank: alias '{options.index}' left as it was: '{report.index}' is incomplete; run the "
                     "same command with --resume to finish it")
    finally:
        backend.close()
    echo_err(report.summary())
    if report.stats.read == 0:
        warn(f"{'stdin' if data == '-' else data}: the input holds no documents")
    if tracker.log_file is not None:
        echo_err(tracker.summary())
    if report.failed:
        for doc_id, reason in report.failed[:5]:
            echo_err(f"esrank: failed: {doc_id}: {reason}")
        raise SystemExit(1)


@click.command("neighbours")
@click.argument("data", type=click.Path(dir_okay=False, allow_dash=True))
@backend_options
@input_options
@click.option("-k", "k", type=click.IntRange(1, 1000), default=5, envvar="ESRANK_K", show_default=True,
              help="Neighbours per document.")
@click.option("--out", type=click.Path(dir_okay=False, allow_dash=True), required=True,
              help="Output JSONL: per document its neighbours and candidate keyphrases (- for stdout).")
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=64, show_default=True,
              help="Query documents per search request (_msearch).")
@click.option("--exclude-self/--include-self", default=True, show_default=True,
              help="Drop the query document's own id from its neighbours (needed when training documents "
                   "query their own index).")
@cost_options
def neighbours_cmd(data: str, **kw: Any) -> None:
    """Retrieve the k nearest training documents of each document and write its candidate pool.

    \b
    Each output line: {"id", "neighbours": [{id, rank, score}],
                       "candidates": [{phrase, neighbour_ranks, bm25_scores, count}]}
    With --cost-log DIR the BM25 search is recorded as the stage neighbour_retrieval.
    """
    from ..corpus import DocumentReader
    from ..ranking.pools import write_pools
    from ..retrieval.factory import open_backend

    tracker = tracker_from_options(kw)
    fields = fields_from(kw)
    options = backend_options_from(kw)
    reader = DocumentReader(fields, kw["fmt"], kw["on_error"], kw["rejects"])
    check_outputs({"--out": kw["out"]}, {"DATA": data}, reader)
    backend = open_backend(options)
    try:
        with read_input(reader, data) as docs, tracker.stage("neighbour_retrieval") as rec:
            result = write_pools(backend, docs, kw["out"], k=kw["k"], batch_size=kw["batch_size"],
                                 exclude_self=kw["exclude_self"])
            rec.items = result.queries
    finally:
        backend.close()
    echo_err(f"neighbours from {backend.name} index '{options.index}': {result.summary()}")
    if tracker.log_file is not None:
        echo_err(tracker.summary())


def dead_letter_path(given: str | None, index: str, data: str) -> str:
    """The dead-letter file of a load: the one given, else INDEX.failed.jsonl (another name when that is the input)."""
    from ..outputs import same_file

    if given:
        return given
    default = f"{index}.failed.jsonl"
    return f"{index}.failed.retry.jsonl" if same_file(default, data) else default


COMMANDS = [load_cmd, neighbours_cmd]
