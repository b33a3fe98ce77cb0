"""Options and helpers shared by the commands: the input documents, the output file, global flags, messages.

Option decorators hand commands ready objects: ``documents_input`` gives ``data`` (a path, ``-`` = stdin) and a
``reader`` (``DocumentReader``: fields, format, error policy, rejects file); ``read_input`` streams the documents
and prints the read/kept/skipped summary; ``check_outputs`` refuses an output that is one of the inputs.
"""
from __future__ import annotations

import functools
import logging
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping

import click

from ..corpus import Document, DocumentReader, Fields
from ..errors import ConfigError
from ..outputs import check_paths
from ..progress import set_quiet

F = Callable[..., Any]

_FIELD_KEYS = ("fmt", "id_field", "title_field", "text_field", "keyphrases_field", "keyphrase_sep", "on_error",
               "rejects")


@contextmanager
def settled_heap() -> Iterator[None]:
    """Around a long ranking loop: collect garbage once, then move every object alive now (modules, the model, the
    index's rows) out of the cycle collector's view (``gc.freeze``), so its collections scan only what the loop
    allocates (with a large index loaded, building candidate pools ran about twice as fast: docs/benchmarks.md);
    afterwards everything is handed back to the collector (``gc.unfreeze``), so nothing outlives its use."""
    import gc

    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def input_options(f: F) -> F:
    """Options describing an input corpus: format, field names, keyphrase separator, error policy."""
    opts = [
        click.option("--input-format", "fmt", type=click.Choice(["jsonl", "parquet", "csv", "tsv"]), default=None,
                     envvar="ESRANK_INPUT_FORMAT",
                     help="Input format (default: from the file name, else from the content)."),
        click.option("--id-field", envvar="ESRANK_ID_FIELD", default=None, help="Id field name(s), comma separated."),
        click.option("--title-field", envvar="ESRANK_TITLE_FIELD", default=None, help="Title field name(s)."),
        click.option("--text-field", envvar="ESRANK_TEXT_FIELD", default=None,
                     help="Text field name(s) (default: abstract,text,body,content)."),
        click.option("--keyphrases-field", envvar="ESRANK_KEYPHRASES_FIELD", default=None,
                     help="Keyphrase field name(s) (default: keyphrases,keywords)."),
        click.option("--keyphrase-sep", default=";", show_default=True, envvar="ESRANK_KEYPHRASE_SEP",
                     help="Separator of keyphrases in CSV/TSV cells (not empty)."),
        click.option("--on-error", type=click.Choice(["fail", "skip"]), default="fail", show_default=True,
                     envvar="ESRANK_ON_ERROR", help="Stop at the first bad record, or skip and count it."),
        click.option("--rejects", type=click.Path(dir_okay=False), default=None, envvar="ESRANK_REJECTS",
                     help="With --on-error skip: write skipped records (with reasons) to this JSONL file."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def fields_from(kw: dict[str, Any], *, require_keyphrases: bool = False) -> Fields:
    """Pop the field options from a command's keyword arguments and build ``Fields`` (older commands)."""
    if isinstance(kw.get("reader"), DocumentReader):
        return kw["reader"].fields
    return Fields.from_options(
        kw.pop("id_field", None), kw.pop("title_field", None), kw.pop("text_field", None),
        kw.pop("keyphrases_field", None), kw.pop("keyphrase_sep", ";"), require_keyphrases=require_keyphrases,
    )


def reader_from(kw: dict[str, Any], *, require_keyphrases: bool = False) -> DocumentReader:
    """Pop the input options from a command's keyword arguments and build its ``DocumentReader``."""
    fields = fields_from(kw, require_keyphrases=require_keyphrases)
    return DocumentReader(fields=fields, fmt=kw.pop("fmt", None), on_error=kw.pop("on_error", "fail"),
                          rejects=kw.pop("rejects", None))


def documents_input(*, require_keyphrases: bool = False, data_option: bool = False) -> Callable[[F], F]:
    """The input documents: a positional DATA argument (``-`` = stdin) and the input options → ``data``, ``reader``.

    DATA is JSONL, Parquet, CSV or TSV, optionally .gz/.bz2/.xz; its format comes from --input-format, the name or
    the content.

    ``data_option`` also accepts the older ``--data FILE`` spelling for one release, with a deprecation line.
    """
    def decorate(f: F) -> F:
        @functools.wraps(f)
        def wrapper(*args: Any, **kw: Any) -> Any:
            kw["reader"] = reader_from(kw, require_keyphrases=require_keyphrases)
            return f(*args, **kw)

        return data_argument(data_option=data_option)(input_options(wrapper))

    return decorate


def data_argument(*, data_option: bool = True, envvar: str | None = None, required: bool = True) -> Callable[[F], F]:
    """The positional DATA argument (``-`` = stdin); ``data_option`` keeps ``--data FILE`` one more release."""
    def decorate(f: F) -> F:
        @functools.wraps(f)
        def wrapper(*args: Any, **kw: Any) -> Any:
            data, old = kw.pop("data", None), kw.pop("data_option", None)
            if old is not None:
                if data is not None:
                    raise ConfigError("give the input documents once: as the DATA argument (--data is deprecated)")
                warn("--data is deprecated and will be removed in the next release: give the documents as the "
                     "DATA argument")
                data = old
            if data is None and required:
                raise click.UsageError("Missing argument 'DATA' (the input documents; - for stdin).")
            return f(*args, data=data, **kw)

        g: F = wrapper
        if data_option:
            g = click.option("--data", "data_option", type=click.Path(dir_okay=False, allow_dash=True), default=None,
                             hidden=True, envvar=envvar, help="Deprecated spelling of the DATA argument.")(g)
        g = click.argument("data", type=click.Path(dir_okay=False, allow_dash=True),
                           required=required and not data_option, metavar="DATA" if required else "[DATA]")(g)
        return g

    return decorate


class DeviceType(click.ParamType):
    """A torch device: auto, cpu, cuda or cuda:N."""

    name = "auto|cpu|cuda[:N]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        """Check the spelling (whether the device exists is checked when the model loads)."""
        v = str(value).strip().lower()
        if v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit()):
            return v
        self.fail(f"{value!r} is not a device: use auto, cpu, cuda or cuda:N", param, ctx)


DEVICE = DeviceType()


def output_option(*, required: bool = False, default: str | None = None, help: str = "Output file; - for stdout.",
                  envvar: str | None = None, directory: bool = False) -> Callable[[F], F]:
    """``--out`` (``-`` = stdout for files): written to a temporary file and renamed into place on success."""
    kind = click.Path(file_okay=False) if directory else click.Path(dir_okay=False, allow_dash=True)
    return click.option("--out", type=kind, required=required, default=default, envvar=envvar,
                        show_default=default is not None, help=help)


def check_outputs(outputs: Mapping[str, str | None], inputs: Mapping[str, str | None],
                  reader: DocumentReader | None = None) -> None:
    """Refuse, before anything is opened, an output (or the rejects file) that is one of the inputs."""
    outs = dict(outputs)
    if reader is not None and reader.rejects:
        outs["--rejects"] = reader.rejects
    check_paths(outs, inputs)


@contextmanager
def read_input(reader: DocumentReader, data: str, *, outputs: Mapping[str, str | None] | None = None,
               inputs: Mapping[str, str | None] | None = None) -> Iterator[Iterator[Document]]:
    """The documents of ``data`` read with the command's reader; summary (and empty-input warning) on stderr.

    Outputs that resolve to an input (``data``, ``inputs``, the rejects file) are refused before anything is opened.
    """
    check_outputs(outputs or {}, {"DATA": data, **(inputs or {})}, reader)
    with reader:
        yield reader.read(data)
    report_reads(reader)


def report_reads(reader: DocumentReader) -> None:
    """Print the read summary of every input of a reader on stderr."""
    for line in reader.summaries():
        echo_err(line)


def output_format_option(*, choices: tuple[str, ...] = ("table", "json", "csv", "markdown"),
                         json_alias: bool = False) -> Callable[[F], F]:
    """``--format`` of what a command prints on stdout (``--json`` kept as a deprecated alias when asked)."""
    def decorate(f: F) -> F:
        g = click.option("--format", "out_format", type=click.Choice(list(choices)), default=choices[0],
                         show_default=True, envvar="ESRANK_FORMAT", help="Output format on stdout.")(f)
        if json_alias:
            g = click.option("--json", "as_json", is_flag=True, hidden=True, expose_value=False,
                             callback=_json_alias, help="Deprecated: --format json.")(g)
        return g

    return decorate


def _json_alias(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        warn("--json is deprecated and will be removed in the next release: use --format json")
        ctx.meta["esrank.format_json"] = True


def chosen_format(out_format: str) -> str:
    """The output format, ``json`` when the deprecated ``--json`` was given."""
    ctx = click.get_current_context(silent=True)
    return "json" if ctx is not None and ctx.meta.get("esrank.format_json") else out_format


def warn(message: str) -> None:
    """A warning line on stderr: ``esrank: warning: ...``."""
    echo_err(f"esrank: warning: {message}")


def echo_err(message: str) -> None:
    """A line on stderr (summaries, warnings), kept off stdout so it stays parseable."""
    click.echo(message, err=True)


def _quiet(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        set_quiet(True)


def _debug(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.meta["esrank.debug"] = True
        logging.getLogger().setLevel(logging.DEBUG)


def add_global_flags(command: click.Command) -> None:
    """Accept ``-q``/``--quiet`` and ``--debug`` after the subcommand too; show every env var in ``--help``."""
    names = {o for p in command.params for o in getattr(p, "opts", [])}
    if not isinstance(command, click.Group):
        if "--quiet" not in names and "-q" not in names:
            command.params.append(click.Option(["-q", "--quiet"], is_flag=True, expose_value=False, callback=_quiet,
                                               help="No progress bars (also accepted before the command)."))
        if "--debug" not in names:
            command.params.append(click.Option(["--debug"], is_flag=True, expose_value=False, callback=_debug,
                                               help="Show tracebacks and debug logs."))
    for p in command.params:
        if isinstance(p, click.Option) and p.envvar:
            p.show_envvar = True
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            add_global_flags(sub)
