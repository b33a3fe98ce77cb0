"""Corpus readers: JSONL, Parquet (kp20k / kptimes / kpbiomed exports) and CSV/TSV → ``Document``.

Readers are generators (a large file is never loaded whole). A bad record either stops the read
with ``InputError(file, line, reason)`` (``on_error="fail"``, the default) or is skipped, counted
in ``ReadStats`` and, when a rejects file is given, written there (``on_error="skip"``).
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal, TextIO

from .errors import ConfigError, InputError
from .text import dedupe_phrases

OnError = Literal["fail", "skip"]


@dataclass
class Document:
    """One document: id, title, text (abstract or body), author keyphrases and other fields."""

    id: str
    title: str
    text: str
    keyphrases: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def full_text(self) -> str:
        """Title and text as one string (the text a query or an encoder sees)."""
        if self.title and self.text:
            return f"{self.title}. {self.text}"
        return self.title or self.text


@dataclass(frozen=True)
class Fields:
    """Which input fields hold what; the first name found in a record wins."""

    id: tuple[str, ...] = ("id", "doc_id", "_id")
    title: tuple[str, ...] = ("title",)
    text: tuple[str, ...] = ("abstract", "text", "body", "content")
    keyphrases: tuple[str, ...] = ("keyphrases", "keywords", "keyphrase")
    keyphrase_sep: str = ";"
    require_keyphrases: bool = False

    def __post_init__(self) -> None:
        if not self.keyphrase_sep:
            raise ConfigError("--keyphrase-sep must not be empty (it splits the keyphrases of a CSV/TSV cell)")

    @classmethod
    def from_options(
        cls,
        id_field: str | None = None,
        title_field: str | None = None,
        text_field: str | None = None,
        keyphrases_field: str | None = None,
        keyphrase_sep: str = ";",
        require_keyphrases: bool = False,
    ) -> "Fields":
        """Fields from CLI options (a comma list each); ``None`` keeps the defaults."""
        d = cls()

        def pick(value: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
            if value is None:
                return default
            names = tuple(n.strip() for n in value.split(",") if n.strip())
            if not names:
                raise ConfigError(f"empty field name list: {value!r}")
            return names

        return cls(
            id=pick(id_field, d.id),
            title=pick(title_field, d.title),
            text=pick(text_field, d.text),
            keyphrases=pick(keyphrases_field, d.keyphrases),
            keyphrase_sep=keyphrase_sep,
            require_keyphrases=require_keyphrases,
        )


@dataclass
class ReadStats:
    """Counts of a read: every record is either kept or skipped."""

    read: int = 0
    kept: int = 0
    skipped: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for the terminal."""
        s = f"read {self.read}, kept {self.kept}, skipped {self.skipped}"
        if self.reasons:
            s += " (" + ", ".join(f"{k}: {v}" for k, v in sorted(self.reasons.items())) + ")"
        return s


class RejectSink:
    """Writes rejected records as JSONL: source, line, reason and the raw record (renamed into place on close)."""

    def __init__(self, path: str | Path | None) -> None:
        from .outputs import AtomicOutput

        self.path = str(path) if path else None
        self._out: AtomicOutput | None = AtomicOutput(path) if path else None
        self.count = 0

    def write(self, source: str, line: int, reason: str, raw: str) -> None:
        """Record one rejected input record."""
        self.count += 1
        if self._out is not None:
            self._out.write(json.dumps({"source": source, "line": line, "reason": reason, "raw": raw}) + "\n")

    def close(self) -> None:
        """Write the rejects file (also after a failed run: it records what this run skipped)."""
        if self._out is not None:
            self._out.commit()
            self._out = None

    def __enter__(self) -> "RejectSink":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Bad(Exception):
    pass


def content_id(title: str, text: str) -> str:
    """A stable id for a record without one: a hash of its title and text."""
    return "sha1:" + hashlib.sha1(f"{title}\x00{text}".encode("utf-8")).hexdigest()[:20]


def _first(record: dict[str, Any], names: tuple[str, ...]) -> tuple[str | None, Any]:
    for n in names:
        if n in record and record[n] is not None:
            return n, record[n]
    return None, None


def _as_text(name: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return " ".join(value)  # some exports store the text as a list of sentences
    raise _Bad(f"field '{name}' must be a string, got {type(value).__name__}")


def record_to_document(record: Any, fields: Fields, *, split_keyphrases: bool = False) -> Document:
    """Validate one parsed record and turn it into a ``Document`` (raises ``_Bad`` with a reason)."""
    if not isinstance(record, dict):
        raise _Bad(f"record must be a JSON object, got {type(record).__name__}")
    tname, title = _first(record, fields.title)
    xname, text = _first(record, fields.text)
    if title is None and text is None:
        raise _Bad("missing text field (looked for " + ", ".join(fields.title + fields.text) + ")")
    title = _as_text(tname or "title", title) if title is not None else ""
    text = _as_text(xname or "text", text) if text is not None else ""
    if not title.strip() and not text.strip():
        raise _Bad("empty title and text")
    kname, kps = _first(record, fields.keyphrases)
    if kps is None:
        if fields.require_keyphrases:
            raise _Bad("missing keyphrase field (looked for " + ", ".join(fields.keyphrases) + ")")
        kps = []
    if split_keyphrases and isinstance(kps, str):
        kps = kps.split(fields.keyphrase_sep) if kps.strip() else []
    if hasattr(kps, "tolist"):  # numpy arrays from Parquet
        kps = kps.tolist()
    if not isinstance(kps, list) or not all(isinstance(k, str) for k in kps):
        raise _Bad(f"field '{kname}' must be a list of strings")
    iname, rid = _first(record, fields.id)
    if rid is None:
        rid = content_id(title, text)
    elif not isinstance(rid, (str, int)) or isinstance(rid, bool):
        raise _Bad(f"field '{iname}' must be a string or an integer")
    used = {tname, xname, kname, iname}
    meta = {k: v for k, v in record.items() if k not in used}
    return Document(str(rid), title.strip(), text.strip(), dedupe_phrases(kps), meta)


FORMATS = ("jsonl", "parquet", "csv", "tsv")
STDIN = "-"
_COMPRESSED = {".gz": "gzip", ".bz2": "bzip2", ".xz": "xz"}
_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"))


def format_from_name(path: str | Path) -> str | None:
    """File format from the name (jsonl, parquet, csv or tsv; compression suffixes ignored), or None."""
    name = str(path).lower()
    for suffix in _COMPRESSED:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    for ext, fmt in ((".jsonl", "jsonl"), (".json", "jsonl"), (".ndjson", "jsonl"), (".parquet", "parquet"),
                     (".csv", "csv"), (".tsv", "tsv"), (".tab", "tsv")):
        if name.endswith(ext):
            return fmt
    return None


def sniff_format(head: bytes) -> str | None:
    """File format from the first bytes of the (decompressed) content, or None."""
    if head.startswith(b"PAR1"):
        return "parquet"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text:
        return None
    if text[:1] in (b"{", b"["):
        return "jsonl"
    first = text.split(b"\n", 1)[0]
    if b"\t" in first:
        return "tsv"
    if b"," in first:
        return "csv"
    return None


def detect_format(path: str | Path) -> str:
    """File format from the name: jsonl, parquet, csv or tsv."""
    fmt = format_from_name(path)
    if fmt is None:
        raise ConfigError(f"{path}: cannot tell the format from the file name; use --input-format jsonl|parquet|csv|tsv")
    return fmt


class _KeepOpen(io.BufferedReader):
    """A buffered view of stdin that does not close it."""

    def close(self) -> None:
        pass


def _open_raw(path: Path) -> io.BufferedReader:
    if str(path) == STDIN:
        return _KeepOpen(sys.stdin.buffer)  # type: ignore[arg-type]
    return open(path, "rb")


def _open_binary(path: Path) -> Any:
    """The decompressed byte stream of a file or stdin (compression from the suffix, else from magic bytes)."""
    raw = _open_raw(path)
    name = path.name.lower()
    kind = next((k for suffix, k in _COMPRESSED.items() if name.endswith(suffix)), None)
    if kind is None:
        head = raw.peek(8)[:8]
        kind = next((k for magic, k in _MAGIC if head.startswith(magic)), None)
    if kind == "gzip":
        import gzip

        return gzip.GzipFile(fileobj=raw, mode="rb")
    if kind == "bzip2":
        import bz2

        return bz2.BZ2File(raw, "rb")
    if kind == "xz":
        import lzma

        return lzma.LZMAFile(raw, "rb")
    return raw


def _read_errors() -> tuple[type[BaseException], ...]:
    import lzma
    import zlib

    return (EOFError, OSError, zlib.error, lzma.LZMAError)


def _lines(path: Path, fh: Any) -> Iterator[tuple[int, bytes]]:
    """(line number, raw bytes) of each line; corrupt or truncated compressed data ends in one ``InputError``."""
    errors = _read_errors()
    lineno = 0
    while True:
        try:
            raw = fh.readline()
        except errors as e:
            what = "truncated" if isinstance(e, EOFError) else "corrupt"
            raise InputError(f"{what} compressed data after line {lineno} ({e or type(e).__name__}); the lines "
                             "before were read", source=str(path), line=lineno + 1) from None
        if not raw:
            return
        lineno += 1
        yield lineno, raw


def _raw_jsonl(path: Path, fh: Any) -> Iterator[tuple[int, str, Any]]:
    for lineno, raw in _lines(path, fh):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            yield lineno, raw.decode("utf-8", "replace"), _Bad(f"invalid UTF-8 at byte {e.start}")
            continue
        if not line.strip():
            continue
        try:
            yield lineno, line.rstrip("\n"), json.loads(line)
        except json.JSONDecodeError as e:
            yield lineno, line.rstrip("\n"), _Bad(f"malformed JSON: {e.msg} (column {e.colno})")


def _raw_delimited(path: Path, fh: Any, delimiter: str) -> Iterator[tuple[int, str, Any]]:
    """Rows of a CSV/TSV file, decoded line by line so that a bad byte costs only its own row."""
    bad_lines: dict[int, str] = {}
    physical = 0

    def decoded() -> Iterator[str]:
        nonlocal physical
        for lineno, raw in _lines(path, fh):
            physical = lineno
            try:
                yield raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as e:
                bad_lines[lineno] = f"invalid UTF-8 at byte {e.start}"
                yield raw.decode("utf-8", "replace")

    kind = "TSV" if delimiter == "\t" else "CSV"
    reader = csv.reader(decoded(), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as e:
        raise InputError(f"malformed {kind} header: {e}", source=str(path), line=1) from None
    if 1 in bad_lines:
        raise InputError(f"{bad_lines[1]} in the header; the columns cannot be read", source=str(path), line=1)
    while True:
        first = physical + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            yield first, "", _Bad(f"malformed {kind}: {e}")
            continue
        if not row:
            continue
        raw = delimiter.join(row)
        bad = [bad_lines.pop(n) for n in range(first, physical + 1) if n in bad_lines]
        if bad:
            yield first, raw, _Bad(bad[0])
            continue
        if len(row) != len(header):
            yield first, raw, _Bad(f"expected {len(header)} columns, got {len(row)}")
            continue
        yield first, raw, dict(zip(header, row))


def _raw_parquet(path: Path, fh: Any) -> Iterator[tuple[int, str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        from .errors import MissingExtraError

        raise MissingExtraError("pyarrow", "parquet", "reading Parquet files") from None
    try:
        source: Any = path if str(path) != STDIN and not path.name.lower().endswith(tuple(_COMPRESSED)) \
            else io.BytesIO(fh.read())
        pf = pq.ParquetFile(source)
    except InputError:
        raise
    except Exception as e:  # pyarrow raises several types for a bad file
        raise InputError(f"not a readable Parquet file: {' '.join(str(e).split())}", source=str(path)) from None
    row = 0
    batches = pf.iter_batches(batch_size=4096)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except Exception as e:  # a corrupt data page or column chunk: pyarrow raises OSError, ArrowInvalid, ...
            raise InputError(f"corrupt Parquet data after row {row}: {' '.join(str(e).split())}",
                             source=str(path), line=row + 1) from None
        for rec in batch.to_pylist():
            row += 1
            yield row, json.dumps(rec, default=str), rec


def _records(path: Path, fmt: str | None) -> Iterator[tuple[int, str, Any, bool]]:
    """(line, raw text, parsed record or _Bad, whether keyphrases are a separated string) of each record."""
    fmt = fmt or format_from_name(path)
    with _open_binary(path) as fh:
        if fmt is None:
            try:
                head = fh.peek(4096)[:4096]
            except _read_errors() as e:
                raise InputError(f"corrupt compressed data ({e})", source=str(path), line=1) from None
            fmt = sniff_format(head)
            if fmt is None and (head.strip() or str(path) != STDIN):
                raise ConfigError(f"{path}: cannot tell the format from the name or the content; "
                                  "use --input-format jsonl|parquet|csv|tsv")
            fmt = fmt or "jsonl"
        if fmt == "jsonl":
            raw_iter, split = _raw_jsonl(path, fh), False
        elif fmt == "csv":
            raw_iter, split = _raw_delimited(path, fh, ","), True
        elif fmt == "tsv":
            raw_iter, split = _raw_delimited(path, fh, "\t"), True
        elif fmt == "parquet":
            raw_iter, split = _raw_parquet(path, fh), False
        else:
            raise ConfigError(f"unknown format {fmt!r}; use jsonl, parquet, csv or tsv")
        for lineno, raw, rec in raw_iter:
            yield lineno, raw, rec, split


def read_documents(
    path: str | Path,
    *,
    fields: Fields | None = None,
    fmt: str | None = None,
    on_error: OnError = "fail",
    rejects: RejectSink | None = None,
    stats: ReadStats | None = None,
) -> Iterator[Document]:
    """Stream the documents of a file; see the module docstring for the error policy."""
    path = Path(path)
    if str(path) != STDIN:
        if not path.exists():
            raise InputError("no such file", source=str(path))
        if path.is_dir():
            raise InputError("is a directory, expected a file", source=str(path))
    fields = fields or Fields()
    stats = stats if stats is not None else ReadStats()
    if fmt is not None and fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; use jsonl, parquet, csv or tsv")
    seen_ids: set[str] = set()
    for lineno, raw, rec, split in _records(path, fmt):
        stats.read += 1
        try:
            if isinstance(rec, _Bad):
                raise rec
            doc = record_to_document(rec, fields, split_keyphrases=split)
            if doc.id in seen_ids:
                raise _Bad(f"duplicate id {doc.id!r}")
            seen_ids.add(doc.id)
        except _Bad as e:
            reason = str(e)
            if on_error == "fail":
                raise InputError(reason + " (use --on-error skip to skip such records)",
                                 source=str(path), line=lineno) from None
            stats.skipped += 1
            key = reason.split(":")[0].split("(")[0].strip()
            stats.reasons[key] = stats.reasons.get(key, 0) + 1
            if rejects is not None:
                rejects.write(str(path), lineno, reason, raw)
            continue
        stats.kept += 1
        yield doc


@dataclass
class DocumentReader:
    """How a command reads its input documents (format, fields, error policy, rejects file) and what it counted.

    Use as a context manager around the reads; ``read`` may be called for several inputs, which then share the
    rejects file and are counted apart (``stats``).
    """

    fields: Fields = field(default_factory=Fields)
    fmt: str | None = None
    on_error: OnError = "fail"
    rejects: str | None = None
    stats: dict[str, ReadStats] = field(default_factory=dict)
    _sink: RejectSink | None = field(default=None, repr=False)

    def read(self, path: str | Path) -> Iterator[Document]:
        """Stream the documents of one input (``-`` = stdin), counted under its path."""
        if self._sink is None:
            self._sink = RejectSink(self.rejects)
        st = self.stats.setdefault(str(path), ReadStats())
        return read_documents(path, fields=self.fields, fmt=self.fmt, on_error=self.on_error, rejects=self._sink,
                              stats=st)

    def close(self) -> None:
        """Write the rejects file (if any)."""
        if self._sink is not None:
            self._sink.close()

    def __enter__(self) -> "DocumentReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def summaries(self) -> list[str]:
        """One line per input read (``PATH: read N, kept K, skipped S``), then a warning per empty input."""
        lines = [f"{'stdin' if p == STDIN else p}: {st.summary()}" for p, st in self.stats.items()]
        for p, st in self.stats.items():
            if st.read == 0:
                lines.append(f"esrank: warning: {'stdin' if p == STDIN else p}: the input holds no documents")
            elif st.kept == 0:
                lines.append(f"esrank: warning: {'stdin' if p == STDIN else p}: every record was skipped")
        return lines


def chunked(documents: Iterable[Document], size: int) -> Iterator[list[Document]]:
    """Consecutive lists of at most ``size`` documents (streaming)."""
    batch: list[Document] = []
    for d in documents:
        batch.append(d)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def write_documents(docs: Iterable[Document], path: str | Path) -> int:
    """Write documents as JSONL (id, title, abstract, keyphrases, meta fields); returns the count."""
    n = 0
    with open(path, "w", encoding="utf-8") as fh:
        for d in docs:
            rec = {"id": d.id, "title": d.title, "abstract": d.text, "keyphrases": d.keyphrases, **d.meta}
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
            n += 1
    return n


def sample_corpus_path() -> Path:
    """Path of the sample corpus shipped with esrank (JSONL, 3 domains)."""
    return Path(__file__).parent / "data" / "sample.jsonl"
