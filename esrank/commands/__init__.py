"""The ``esrank`` command line (Click). Thin: each command parses options and calls the library.

``main`` is the ``esrank`` console script (``esrank.commands:main``); one module per command family.
"""
from __future__ import annotations

import logging
import sys
from typing import Any

import click

from .. import __version__
from ..errors import EsrankError, missing_module_error
from ..progress import set_quiet
from . import common as _common


class EsrankGroup(click.Group):
    """A group that turns user errors into one line on stderr and a non-zero exit (traceback with --debug)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (EsrankError, ModuleNotFoundError) as e:
            if ctx.meta.get("esrank.debug"):
                raise
            err = e if isinstance(e, EsrankError) else missing_module_error(e)
            click.echo(f"esrank: error: {err.one_line()}", err=True)
            ctx.exit(err.exit_code)
        except KeyboardInterrupt:
            click.echo("esrank: interrupted", err=True)
            ctx.exit(130)


@click.group(cls=EsrankGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="esrank")
@click.option("--debug", is_flag=True, envvar="ESRANK_DEBUG", help="Show tracebacks and debug logs.")
@click.option("-q", "--quiet", is_flag=True, envvar="ESRANK_QUIET", help="No progress bars.")
@click.pass_context
def main(ctx: click.Context, debug: bool, quiet: bool) -> None:
    """esrank: retrieval-augmented keyphrase ranking for Elasticsearch, OpenSearch and an embedded BM25 index.

    \b
    Typical flow:
      esrank load TRAIN.jsonl --index kp          # index training documents and keyphrases
      esrank train TRAIN.jsonl --index kp --out model/
      esrank rank TEST.jsonl --index kp --model model/ --out preds.jsonl
      esrank evaluate --gold TEST.jsonl --pred preds.jsonl
    Or run everything on the bundled sample corpus: esrank demo
    """
    ctx.meta["esrank.debug"] = debug
    set_quiet(quiet)
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, stream=sys.stderr,
                        format="esrank: %(levelname)s: %(name)s: %(message)s")


def _register() -> None:
    from . import bart, cluster, demo, enrich, evaluate, export, ranking, report, retrieval, serve, vocab

    for cmd in (*evaluate.COMMANDS, vocab.vocab, report.report_cmd, bart.bart_group, *retrieval.COMMANDS,
                *ranking.COMMANDS, *export.COMMANDS, *demo.COMMANDS, *enrich.COMMANDS, *serve.COMMANDS,
                *cluster.COMMANDS):
        main.add_command(cmd)


_register()
_common.add_global_flags(main)
