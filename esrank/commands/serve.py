"""``esrank serve``: the keyphrase service over HTTP (Starlette on uvicorn)."""
from __future__ import annotations

import os
from typing import Any

import click

from .common import echo_err
from .ranking import DEFAULT_METHOD, METHOD_CHOICES, model_options
from .retrieval import backend_options, backend_options_from

TOKEN_ENV = "ESRANK_SERVE_TOKEN"


@click.command("serve")
@backend_options
@model_options
@click.option("--method", type=click.Choice(list(METHOD_CHOICES)), default=DEFAULT_METHOD, envvar="ESRANK_METHOD",
              show_default=True, help="model: the bi-encoder; vote: the neighbour vote (no model loaded); "
                                      "mix: cosine mixed with the vote (see `esrank rank --help`).")
@click.option("-k", "k", type=click.IntRange(1, 1000), default=None, envvar="ESRANK_K",
              help="Neighbours whose keyphrases are the candidates (default: the ranking default, as `esrank rank`).")
@click.option("--top-n", type=click.IntRange(1), default=None, envvar="ESRANK_TOP_N",
              help="Keyphrases returned per document (default: every candidate, best first).")
@click.option("--host", default="127.0.0.1", envvar="ESRANK_SERVE_HOST", show_default=True,
              help="Address to listen on (0.0.0.0 for every interface).")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, envvar="ESRANK_SERVE_PORT", show_default=True)
@click.option("--max-batch", type=click.IntRange(1, 10_000), default=64, envvar="ESRANK_SERVE_MAX_BATCH",
              show_default=True, help="Documents ranked together across concurrent requests.")
@click.option("--max-wait-ms", type=click.FloatRange(0, 10_000), default=5.0, envvar="ESRANK_SERVE_MAX_WAIT_MS",
              show_default=True, help="How long a request waits for others to join its batch.")
@click.option("--max-docs", type=click.IntRange(1, 100_000), default=64, envvar="ESRANK_SERVE_MAX_DOCS",
              show_default=True, help="Documents per request (more: HTTP 413).")
@click.option("--max-doc-chars", type=click.IntRange(1), default=20_000, envvar="ESRANK_SERVE_MAX_DOC_CHARS",
              show_default=True, help="Characters of title + text per document (more: HTTP 422).")
@click.option("--max-body-bytes", type=click.IntRange(1), default=1_048_576, envvar="ESRANK_SERVE_MAX_BODY_BYTES",
              show_default=True, help="Bytes per request body (more: HTTP 413).")
@click.option("--graceful-timeout", type=click.IntRange(0), default=30, envvar="ESRANK_SERVE_GRACEFUL_TIMEOUT",
              show_default=True, help="Seconds given to in-flight requests after SIGTERM/SIGINT.")
@click.option("--exclude-self/--include-self", default=True, show_default=True,
              help="Drop a document's own id from its neighbours (when callers send ids of indexed documents).")
@click.option("--access-log", is_flag=True, envvar="ESRANK_SERVE_ACCESS_LOG",
              help="Log one line per request (method, path, status; never headers).")
def serve_cmd(**kw: Any) -> None:
    """Serve keyphrases over HTTP: the index and model are loaded once, requests are batched together.

    \b
    esrank serve --index kp --model model/ --port 8000
    curl -s localhost:8000/v1/keyphrases -H 'content-type: application/json' \\
         -d '{"docs": [{"title": "...", "text": "..."}]}'
    Endpoints: POST /v1/keyphrases, GET /healthz, GET /v1/info. With ESRANK_SERVE_TOKEN set, /v1/* need
    'Authorization: Bearer <token>'. SIGTERM stops accepting and finishes in-flight batches. See docs/serve.md.
    """
    import importlib.util

    if importlib.util.find_spec("starlette") is None or importlib.util.find_spec("uvicorn") is None:
        from ..errors import MissingExtraError

        raise MissingExtraError("starlette, uvicorn", "serve", "esrank serve")
    from ..ranking.api import KeyphraseRanker
    from ..serve.app import KeyphraseService, run
    from ..serve.limits import ServeLimits

    options = backend_options_from(kw)
    token = os.environ.get(TOKEN_ENV) or None
    ranker = KeyphraseRanker.open(options.index, kw["model"], options=options, method=kw["method"], k=kw["k"],
                                  top_n=kw["top_n"], exclude_self=kw["exclude_self"], device=kw["device"],
                                  precision=kw["precision"], threads=kw["threads"],
                                  max_doc_tokens=kw["max_doc_tokens"])
    limits = ServeLimits(max_body_bytes=kw["max_body_bytes"], max_docs=kw["max_docs"],
                         max_doc_chars=kw["max_doc_chars"])
    info = ranker.info()
    host, port = kw["host"], kw["port"]

    def ready() -> None:
        echo_err(f"esrank serve: http://{host}:{port} (model {info['model']}, index '{info['index']}' "
                 f"[{info['backend']}], method {info['method']}, k {info['k']}; "
                 f"{'bearer token required' if token else 'no token'})")

    service = KeyphraseService(ranker, limits=limits, max_batch=kw["max_batch"], max_wait_ms=kw["max_wait_ms"],
                               token=token, on_ready=ready)
    try:
        run(service, host, port, access_log=kw["access_log"], graceful_timeout=kw["graceful_timeout"],
            log_level="info" if kw["access_log"] else "warning")
    finally:
        ranker.close()
    echo_err("esrank serve: stopped")


COMMANDS = [serve_cmd]
