"""Memory-mapped keyphrase embeddings: one float32 matrix per model (a ``.npy`` file opened with
``mmap_mode='r'``) and its key table, written by ``esrank encode-keyphrases`` next to the SQLite cache.

Files, in the cache directory, for a model of fingerprint ``FP`` (``Encoder.fingerprint``)::

    FP.sqlite                  the SQLite cache (phrase → vector), read and written by ``--disk-cache``
    FP.keyphrases.json         the key table: format, fingerprint, dimension, dtype, row count, the matrix file's
                               name and size, and the phrases in row order
    FP.keyphrases-TOKEN.npy    the matrix (rows × dim float32), TOKEN a random name of each write

A write puts the matrix under a new name first (fsync'ed), then replaces the key table (written to a temporary
file, fsync'ed, renamed): the table is the commit point, so a reader sees the old pair or the new pair, never a
mix; the superseded matrix is removed afterwards (a process that has it mapped keeps reading it). Writers take
``FP.keyphrases.lock``. A key table that is not of this model, names a missing or truncated matrix, or cannot be
read is ignored with a warning (the ranker then reads the SQLite cache and encodes what is missing), never
trusted.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

log = logging.getLogger(__name__)

FORMAT = "esrank-keyphrase-matrix"
VERSION = 1
DTYPE = "float32"  # exact: the embeddings ranked are bit for bit those the encoder made


def table_path(root: str | os.PathLike[str], fingerprint: str) -> Path:
    """The key table of a model's matrix in cache directory ``root``."""
    return Path(root) / f"{fingerprint}.keyphrases.json"


class KeyphraseMatrix:
    """A read-only, memory-mapped matrix of keyphrase embeddings and its phrase → row table."""

    def __init__(self, path: Path, matrix: np.ndarray, phrases: Sequence[str]) -> None:
        self.path = path  # the key table
        self.matrix = matrix
        self.rows: dict[str, int] = {p: i for i, p in enumerate(phrases)}

    def __len__(self) -> int:
        return len(self.rows)

    @classmethod
    def open(cls, root: str | os.PathLike[str], fingerprint: str, dim: int) -> "KeyphraseMatrix | None":
        """The model's matrix in ``root``; None when there is none, or (with a warning) when it is not usable."""
        path = table_path(root, fingerprint)
        try:
            with open(path, encoding="utf-8") as fh:
                table = json.load(fh)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            log.warning("%s: unreadable keyphrase matrix table (%s); ignored, keyphrases come from the SQLite cache "
                        "(run esrank encode-keyphrases again)", path, type(e).__name__)
            return None
        problem = _check_table(table, fingerprint, dim)
        matrix: np.ndarray | None = None
        if problem is None:
            file = path.parent / str(table["matrix"])
            try:
                if file.stat().st_size != int(table["matrix_bytes"]):
                    problem = f"{file.name} has {file.stat().st_size} bytes, the table says {table['matrix_bytes']}"
                else:
                    matrix = np.load(file, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as e:
                problem = f"{file.name}: {type(e).__name__}: {e}"
        if problem is None and matrix is not None and (matrix.dtype != np.dtype(DTYPE) or matrix.ndim != 2
                                                       or matrix.shape != (len(table["phrases"]), dim)):
            problem = f"the matrix is {matrix.dtype} {matrix.shape}, the table says {DTYPE} ({table['rows']}, {dim})"
        if problem is not None or matrix is None:
            log.warning("%s: keyphrase matrix ignored: %s; keyphrases come from the SQLite cache (run esrank "
                        "encode-keyphrases again)", path, problem)
            return None
        return cls(path, matrix, table["phrases"])

    def rows_of(self, phrases: Sequence[str]) -> np.ndarray:
        """The row of each phrase (-1 for a phrase the matrix does not hold)."""
        get = self.rows.get
        return np.fromiter((get(p, -1) for p in phrases), dtype=np.int64, count=len(phrases))


def _check_table(table: Any, fingerprint: str, dim: int) -> str | None:
    """Why a key table cannot be used with this model (None: it can)."""
    if not isinstance(table, dict) or table.get("format") != FORMAT:
        return "not a keyphrase matrix table"
    if table.get("version") != VERSION:
        return f"format version {table.get('version')}, this esrank reads {VERSION}"
    if table.get("fingerprint") != fingerprint:
        return f"made by another model (fingerprint {table.get('fingerprint')}, this model {fingerprint})"
    if table.get("dim") != dim or table.get("dtype") != DTYPE:
        return f"{table.get('dim')}-d {table.get('dtype')} vectors, the model makes {dim}-d {DTYPE}"
    phrases = table.get("phrases")
    if (not isinstance(phrases, list) or table.get("rows") != len(phrases)
            or not isinstance(table.get("matrix"), str) or not isinstance(table.get("matrix_bytes"), int)
            or "/" in table["matrix"] or os.sep in table["matrix"]):
        return "the table is incomplete"
    return None


@contextmanager
def _locked(root: Path, fingerprint: str) -> Iterator[None]:
    with open(root / f"{fingerprint}.keyphrases.lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        yield


def write_matrix(root: str | os.PathLike[str], fingerprint: str, dim: int, rows: int,
                 chunks: Iterable[tuple[Sequence[str], np.ndarray]]) -> Path:
    """Write ``rows`` embeddings, given as (phrases, (n, dim) vectors) chunks, as the model's matrix and key table
    (atomically; see the module docstring); returns the key table's path."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    name = f"{fingerprint}.keyphrases-{uuid.uuid4().hex[:12]}.npy"
    tmp = root / (name + ".tmp")
    table = table_path(root, fingerprint)
    table_tmp = table.with_name(table.name + f".{uuid.uuid4().hex[:8]}.tmp")
    phrases: list[str] = []
    with _locked(root, fingerprint):
        try:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=DTYPE, shape=(rows, dim))
            for part, vectors in chunks:
                if len(phrases) + len(part) > rows:
                    raise ValueError(f"more than the {rows} announced rows")
                out[len(phrases):len(phrases) + len(part)] = vectors
                phrases.extend(part)
            if len(phrases) != rows:
                raise ValueError(f"{len(phrases)} rows written, {rows} announced")
            out.flush()
            del out
            _fsync(tmp)
            os.replace(tmp, root / name)
            meta = {"format": FORMAT, "version": VERSION, "fingerprint": fingerprint, "dim": dim, "dtype": DTYPE,
                    "rows": rows, "matrix": name, "matrix_bytes": (root / name).stat().st_size, "phrases": phrases}
            with open(table_tmp, "w", encoding="utf-8") as fh:
                json.dump(meta, fh, ensure_ascii=False)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(table_tmp, table)
        except BaseException:
            for leftover in (tmp, table_tmp):
                leftover.unlink(missing_ok=True)
            if not _names_matrix(table, name):
                (root / name).unlink(missing_ok=True)
            raise
        for old in root.glob(f"{fingerprint}.keyphrases-*.npy*"):  # superseded matrices, a crashed write's tmp
            if old.name != name:
                old.unlink(missing_ok=True)
    return table


def _names_matrix(table: Path, name: str) -> bool:
    try:
        return json.loads(table.read_text(encoding="utf-8")).get("matrix") == name
    except (OSError, ValueError, AttributeError):
        return False


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
