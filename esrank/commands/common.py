"""Options and helpers shared by the commands (field names, error policy, output)."""
from __future__ import annotations

from typing import Any, Callable

import click

from ..corpus import Fields

F = Callable[..., Any]


def input_options(f: F) -> F:
    """Options describing an input corpus: format, field names, keyphrase separator, error policy."""
    opts = [
        click.option("--input-format", "fmt", type=click.Choice(["jsonl", "parquet", "csv", "tsv"]), default=None,
                     help="Input format (default: from the file name)."),
        click.option("--id-field", envvar="ESRANK_ID_FIELD", default=None, help="Id field name(s), comma separated."),
        click.option("--title-field", envvar="ESRANK_TITLE_FIELD", default=None, help="Title field name(s)."),
        click.option("--text-field", envvar="ESRANK_TEXT_FIELD", default=None,
                     help="Text field name(s) (default: abstract,text,body,content)."),
        click.option("--keyphrases-field", envvar="ESRANK_KEYPHRASES_FIELD", default=None,
                     help="Keyphrase field name(s) (default: keyphrases,keywords)."),
        click.option("--keyphrase-sep", default=";", show_default=True,
                     help="Separator of keyphrases in CSV/TSV cells."),
        click.option("--on-error", type=click.Choice(["fail", "skip"]), default="fail", show_default=True,
                     envvar="ESRANK_ON_ERROR", help="Stop at the first bad record, or skip and count it."),
        click.option("--rejects", type=click.Path(dir_okay=False), default=None,
                     help="With --on-error skip: write skipped records (with reasons) to this JSONL file."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def fields_from(kw: dict[str, Any], *, require_keyphrases: bool = False) -> Fields:
    """Pop the field options from a command's keyword arguments and build ``Fields``."""
    return Fields.from_options(
        kw.pop("id_field", None), kw.pop("title_field", None), kw.pop("text_field", None),
        kw.pop("keyphrases_field", None), kw.pop("keyphrase_sep", ";"), require_keyphrases=require_keyphrases,
    )


def echo_err(message: str) -> None:
    """A line on stderr (summaries, warnings), kept off stdout so it stays parseable."""
    click.echo(message, err=True)
