"""The embedded backend: a bm25s index on disk, no server needed.

Layout of an index directory::

    documents.jsonl   append-only log of the loaded documents (id, title, text, keyphrases); last version wins
    index/            the BM25 weight matrix and the term vocabulary (bm25s format)
    index/impact_*.npy the matrix's postings again, each term's in decreasing weight (for the postings budget)
    index/rows.jsonl  id and keyphrases of each row of the matrix
    manifest.json     parameters, the log size the index was built from, the document count
    esrank-index.json the marker: esrank's format name and version, written first and never rewritten
    .lock             flock'ed (exclusive, non-blocking) by every writer: a second writer stops at once

The index owns its directory: esrank writes (and ``--overwrite`` empties) only a directory that carries the
marker, is empty, or does not exist yet (an index made before the marker existed is recognised by its
version-1 manifest next to the log, and gets the marker at its next write). Everything but the log is
derived from it: a missing, partial or unreadable manifest or matrix (a crash between two steps of a rebuild)
is rebuilt from the log when the index is opened.

Adding documents appends them to the log (flushed and fsync'ed per batch, so an interrupted load loses
nothing it reported as indexed) and then rebuilds the BM25 matrices from the whole log: bm25s has no
incremental update, and a rebuild of 100k documents takes seconds. When the log holds lines the index
was not built from (a load was interrupted), the index is rebuilt when it is opened.
"""
from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import logging
import os
import shutil
from contextlib import contextmanager
from json.encoder import encode_basestring as _encode_str  # json's (C) string encoder, as dumps(ensure_ascii=False)
from pathlib import Path
from typing import Any, BinaryIO, Callable, ContextManager, Iterable, Iterator, Sequence

import numpy as np

from ..corpus import Document
from ..errors import BackendError, ConfigError, EsrankError
from .base import Backend, BulkResult, KeyphraseFrequencies, Neighbour, count_keyphrases
from .bm25_index import Analyzer, Scorer, bm25_matrix, impact_order
from .mappings import EMBEDDED, load_mapping
from .query import DEFAULT_MAX_TERMS, DEFAULT_POSTINGS_BUDGET, query_text, top_terms

log = logging.getLogger(__name__)
logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s logs every index build at DEBUG level

LOG_NAME = "documents.jsonl"
MANIFEST = "manifest.json"
ROWS = "index/rows.jsonl"  # id and keyphrases of each matrix row
IMPACT = ("impact_data.npy", "impact_indices.npy")  # in index/: the postings by decreasing weight per term
FORMAT_VERSION = 1
MARKER = "esrank-index.json"  # written first, never rewritten: this directory is an esrank embedded index
MARKER_FORMAT = "esrank-embedded-index"
LOCK = ".lock"  # flock'ed by every writer
_BAD_NAME_CHARS = set(' "*\\<|,>/?#:')


def check_embedded_index_name(index: str) -> str:
    """The index name if valid (lowercase; no whitespace, ``*``, ``:``, ``/`` or other special characters)."""
    if (not index or index != index.lower() or any(c in _BAD_NAME_CHARS or c.isspace() for c in index)
            or index[0] in "-_+." or len(index.encode()) > 255):
        raise ConfigError(f"invalid index name {index!r} (lowercase letters, digits, '-', '_', '.', '+'; "
                          "no spaces or special characters; not starting with '-', '_', '+' or '.')")
    return index


def default_index_path(index: str) -> Path:
    """Where an embedded index lives when no ``--path`` is given: the user's data directory."""
    base = os.environ.get("ESRANK_DATA_DIR") or os.path.join(
        os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share"), "esrank")
    return Path(base) / "indexes" / index


class EmbeddedBackend(Backend):
    """A bm25s index persisted to a directory (see the module docstring)."""

    name = "embedded"

    def __init__(self, index: str, path: str | Path | None = None, *,
                 max_query_terms: int = DEFAULT_MAX_TERMS,
                 postings_budget: int | None = DEFAULT_POSTINGS_BUDGET) -> None:
        self.index = check_embedded_index_name(index)
        self.path = Path(path) if path is not None else default_index_path(index)
        self.max_query_terms = max_query_terms
        if postings_budget is not None and postings_budget < 1:
            raise ConfigError(f"the postings budget must be a positive number of postings, not {postings_budget}")
        self.postings_budget = postings_budget  # postings a query scores at most (None: all, exhaustive)
        self._impact: tuple[np.ndarray, np.ndarray] | None = None  # the postings in impact order (data, indices)
        conf = load_mapping(EMBEDDED)
        self.k1 = float(conf["bm25"]["k1"])
        self.b = float(conf["bm25"]["b"])
        self.method = str(conf["bm25"].get("method", "lucene"))
        self.stemmer_language = conf["analysis"]["stemmer"]
        self.stopwords = conf["analysis"]["stopwords"]
        # bm25s leaves out Lucene's constant (k1 + 1) factor; with it, scores equal the servers' scores
        self._scale = self.k1 + 1.0
        self._rows: list[tuple[str, tuple[str, ...]]] = []  # index row → (id, keyphrases)
        self._ids: dict[str, int] = {}
        self._log_lines = 0
        self._retriever: Any = None  # bm25s.BM25
        self._scorer_cache: Scorer | None = None
        self._idf_cache: np.ndarray | None = None
        self._frequencies: tuple[list[Any], KeyphraseFrequencies] | None = None  # (the rows counted, counts)
        self._analyzer: Analyzer | None = None
        self._opened = False
        self._lock_fh: Any = None  # the open lock file while this object holds the write lock
        self._lock_depth = 0
        self._manifest_mtime: int | None = None
        # times the tokenisation of each rebuild when set, e.g. to a CostTracker's ``stage``
        self.stage: Callable[..., ContextManager[Any]] | None = None

    # -- ownership and locking -------------------------------------------------------------------
    def _is_ours(self) -> bool:
        """Whether the directory carries esrank's marker (or is an index made before the marker existed)."""
        marker = self.path / MARKER
        if marker.exists():
            try:
                info = json.loads(marker.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return False
            return isinstance(info, dict) and info.get("format") == MARKER_FORMAT
        try:  # an index of esrank 0.x: a version-1 manifest next to the document log
            manifest = json.loads((self.path / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return (isinstance(manifest, dict) and manifest.get("format") == 1 and "log_lines" in manifest
                and (self.path / LOG_NAME).is_file())

    def _check_writable(self) -> None:
        """Refuse a path that is a file, or a non-empty directory that is not an index of ours (writes nothing)."""
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError("is a file, not an index directory", source=str(self.path))
        # list first, then look for the marker: it is written before anything else, so a listing with other files
        # in it of a directory that is ours already shows the marker (the other order races a concurrent create)
        if self.path.is_dir() and any(e.name not in (LOCK, MARKER + ".tmp") for e in self.path.iterdir()) \
                and not self._is_ours():
            raise ConfigError(f"is not empty and is not an esrank index (no {MARKER}); refusing to write into it: "
                              "choose another --path", source=str(self.path))

    def _claim(self) -> None:
        """Make the directory an index of ours (checked again under the write lock; then the marker)."""
        self._check_writable()
        if not (self.path / MARKER).exists():
            _write_atomic(self.path / MARKER, json.dumps({"format": MARKER_FORMAT, "version": FORMAT_VERSION}))

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold the index's exclusive write lock (``fcntl.flock``); another writer gets an error at once."""
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        fh = open(self.path / LOCK, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise BackendError(f"embedded index '{self.index}' at {self.path} is being written by another "
                               "process (esrank load?); run this again when it has finished") from None
        self._lock_fh, self._lock_depth = fh, 1
        try:
            yield
        finally:
            self._lock_depth = 0
            self._lock_fh = None
            fh.close()  # releases the lock

    # -- lifecycle -------------------------------------------------------------------------------
    def create(self, *, overwrite: bool = False) -> None:
        """Create the index directory (or open the existing index; ``overwrite`` empties it)."""
        self._check_writable()
        self.path.mkdir(parents=True, exist_ok=True)
        with self._writing():
            self._claim()
            if overwrite:
                for entry in self.path.iterdir():
                    if entry.name in (MARKER, LOCK):
                        continue
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry)
                    else:
                        entry.unlink()
            if not (self.path / MANIFEST).exists():
                (self.path / LOG_NAME).touch()
                self._rebuild()
            else:
                self.open()

    def open(self) -> None:
        """Open an existing index; rebuild it from the document log when an interrupted load or a crash left
        the matrices missing, partial or older than the log."""
        if not self.path.is_dir() or not self._is_ours():
            raise BackendError(f"no embedded index '{self.index}' at {self.path} (run esrank load first)")
        if not (self.path / LOG_NAME).is_file():
            raise BackendError(f"embedded index '{self.index}' at {self.path} has no document log ({LOG_NAME}); "
                               "rebuild it with esrank load --overwrite", source=str(self.path))
        try:
            manifest = json.loads((self.path / MANIFEST).read_text(encoding="utf-8"))
            if not isinstance(manifest, dict):
                raise ValueError("not an object")
        except (OSError, ValueError):
            log.warning("index %s: manifest missing or unreadable; rebuilding from the document log", self.index)
            self._recover()
            return
        if manifest.get("format") != FORMAT_VERSION:
            raise BackendError(f"{self.path}: index format {manifest.get('format')} is not supported by this "
                               f"esrank (format {FORMAT_VERSION}); rebuild it with esrank load --overwrite")
        try:
            if (manifest.get("log_bytes") == (self.path / LOG_NAME).stat().st_size
                    and (self.path / ROWS).exists()):
                with open(self.path / ROWS, encoding="utf-8") as fh:  # fast path: the log is as the index saw it
                    self._rows = [(r[0], tuple(r[1])) for r in map(json.loads, fh)]
                self._ids = {doc_id: row for row, (doc_id, _) in enumerate(self._rows)}
                self._log_lines = int(manifest["log_lines"])
                self._load_matrices()
                return
            self._scan_log()
            if manifest.get("log_lines") == self._log_lines:
                self._load_matrices()
                return
            log.warning("index %s: rebuilding from its document log (an earlier load was interrupted)", self.index)
        except EsrankError:
            raise
        except Exception as e:  # noqa: BLE001 - any damage to the derived files: they are rebuilt from the log
            log.warning("index %s: the BM25 matrices are damaged (%s); rebuilding from the document log",
                        self.index, type(e).__name__)
        self._recover()

    def _recover(self) -> None:
        """Rebuild from the document log, under the write lock."""
        with self._writing():
            self._rebuild()

    def close(self) -> None:
        """Drop the matrices from memory (every write was flushed when it happened)."""
        self._retriever = None
        self._impact = None
        self._scorer_cache = None
        self._idf_cache = None
        self._analyzer = None
        self._opened = False

    # -- reading ---------------------------------------------------------------------------------
    def count(self) -> int:
        """Number of distinct documents in the index."""
        if not self._opened:
            self.open()
        return len(self._rows)

    def ids_present(self, ids: Sequence[str]) -> set[str]:
        """Which of these ids the index (or its log) already holds."""
        if not self._opened:
            self.open()
        return {i for i in ids if i in self._ids}

    def neighbours(self, documents: Sequence[Document], k: int = 5,
                   exclude_ids: Sequence[set[str]] | None = None) -> list[list[Neighbour]]:
        """The k best BM25 matches of each document, without the ids in ``exclude_ids[i]``."""
        if not self._opened:
            self.open()
        if exclude_ids is not None and len(exclude_ids) != len(documents):
            raise ValueError("exclude_ids must have one set per document")
        out: list[list[Neighbour]] = [[] for _ in documents]
        if not self._rows or k <= 0 or self._analyzer is None or self._retriever is None:
            return out
        queries = self.queries(documents)
        todo = [i for i, q in enumerate(queries) if len(q[0])]
        if not todo:
            return out
        excl = [exclude_ids[i] if exclude_ids else set() for i in todo]
        found = self._scorer().top_k([queries[i] for i in todo], [k + len(e) for e in excl])
        for i, ex, (docs_idx, scores) in zip(todo, excl, found):
            rank = 0
            for j, score in zip(docs_idx, scores):
                doc_id, kps = self._rows[int(j)]
                if doc_id in ex:
                    continue
                rank += 1
                out[i].append(Neighbour(doc_id, rank, float(score) * self._scale, kps))
                if rank == k:
                    break
        return out

    def keyphrase_frequencies(self) -> KeyphraseFrequencies:
        """How many indexed documents carry each keyphrase (from the matrix rows; kept until the next rebuild)."""
        if not self._opened:
            self.open()
        if self._frequencies is None or self._frequencies[0] is not self._rows:  # rows are replaced, not edited
            self._frequencies = (self._rows, count_keyphrases(kps for _, kps in self._rows))
        return self._frequencies[1]

    def query(self, document: Document) -> tuple[np.ndarray, np.ndarray]:
        """(term ids, frequencies) a document queries with: its analysed terms known to the index, at most
        ``max_query_terms`` of them (the highest tf·idf; see ``esrank.retrieval.query``)."""
        return self.queries([document])[0]

    def queries(self, documents: Sequence[Document]) -> list[tuple[np.ndarray, np.ndarray]]:
        """``query`` of each document, the batch analysed together."""
        if not self._opened:
            self.open()
        assert self._analyzer is not None
        out = self._analyzer.queries_term_counts([query_text(d) for d in documents])
        for i, (ids, tf) in enumerate(out):
            if len(ids) > self.max_query_terms:
                names = self._analyzer.term_names()
                keep = top_terms([names[t] for t in ids], tf, self._idf()[ids], self.max_query_terms)
                out[i] = (ids[keep], tf[keep])
        return out

    def _idf(self) -> np.ndarray:
        if self._idf_cache is None:
            self._idf_cache = self._scorer().idf()
        return self._idf_cache

    def _scorer(self) -> Scorer:
        if self._scorer_cache is None:
            sc = self._retriever.scores
            self._scorer_cache = Scorer(sc["data"], sc["indices"], sc["indptr"], int(sc["num_docs"]),
                                        budget=self.postings_budget, impact=self._impact)
        self._scorer_cache.budget = self.postings_budget  # as set now
        return self._scorer_cache

    # -- writing ---------------------------------------------------------------------------------
    def bulk_add(self, documents: Iterable[Document], *, batch_size: int = 500,
                 on_failure: Callable[[Document, str], None] | None = None) -> BulkResult:
        """Append documents to the log (fsync per batch), then rebuild the BM25 matrices once."""
        if not (self.path / MANIFEST).exists():
            self.create()
        self._check_writable()
        with self._writing():
            self._claim()
            return self._bulk_add(documents, batch_size)

    def _bulk_add(self, documents: Iterable[Document], batch_size: int) -> BulkResult:
        if not self._opened or (self.path / MANIFEST).stat().st_mtime_ns != self._manifest_mtime:
            self.open()  # another process may have written since this object opened the index
        result = BulkResult()
        batch: list[Document] = []
        log_path = self.path / LOG_NAME
        before = log_path.stat().st_size
        added: list[dict[str, Any]] = []  # the appended records, so the rebuild need not read them back
        written = 0
        with open(log_path, "ab") as fh:
            for doc in documents:
                batch.append(doc)
                if len(batch) >= batch_size:
                    written += self._append(fh, batch, result, added)
                    batch = []
            if batch:
                written += self._append(fh, batch, result, added)
        if result.indexed:
            if log_path.stat().st_size == before + written:
                self._rebuild(added, before)
            else:  # not what this load wrote (cannot happen under the write lock): read the whole log
                self._rebuild()
        return result

    def _append(self, fh: BinaryIO, batch: list[Document], result: BulkResult, added: list[dict[str, Any]]) -> int:
        """Append a batch to the log (flushed and fsync'ed); returns the number of bytes written."""
        lines = []
        for d in batch:
            rec = {"id": d.id, "title": d.title, "text": d.text, "keyphrases": list(d.keyphrases)}
            lines.append(_json_line(rec))
            added.append(rec)
        data = "".join(lines).encode("utf-8")
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
        for d in batch:
            if d.id not in self._ids:
                self._ids[d.id] = -1  # known; row assigned at the next rebuild
                result.created += 1
            result.indexed += 1
        self._log_lines += len(batch)
        return len(data)

    def iter_documents(self, batch_size: int = 1000) -> Iterator[Document]:
        """Every stored document, from the document log (the last version of a re-added id)."""
        latest: dict[str, dict[str, Any]] = {}
        for rec in self._read_log():
            latest.pop(rec["id"], None)
            latest[rec["id"]] = rec
        for rec in latest.values():
            yield Document(rec["id"], rec.get("title", ""), rec.get("text", ""), list(rec.get("keyphrases") or ()))

    def _read_log(self, upto: int | None = None) -> Iterator[dict[str, Any]]:
        """Records of the log (its first ``upto`` bytes if given); a torn last line (crash during a write) is cut
        off."""
        path = self.path / LOG_NAME
        good_bytes = 0
        with open(path, "rb") as fh:
            for raw in fh:
                if upto is not None and good_bytes >= upto:
                    return
                try:
                    rec = json.loads(raw)
                except ValueError:
                    if raw.endswith(b"\n"):
                        raise BackendError(f"corrupt document log line after byte {good_bytes}",
                                           source=str(path)) from None
                    log.warning("%s: dropping a partly written last line", path)
                    break
                good_bytes += len(raw)
                yield rec
        if good_bytes != path.stat().st_size:
            with open(path, "r+b") as fh:
                fh.truncate(good_bytes)

    def _scan_log(self) -> None:
        latest: dict[str, tuple[str, ...]] = {}
        n = 0
        for rec in self._read_log():
            n += 1
            latest.pop(rec["id"], None)  # a re-added id moves to its last position, like the rebuild
            latest[rec["id"]] = tuple(rec.get("keyphrases") or ())
        self._log_lines = n
        self._rows = list(latest.items())
        self._ids = {doc_id: row for row, (doc_id, _) in enumerate(self._rows)}

    def _rebuild(self, appended: list[dict[str, Any]] | None = None, upto: int | None = None) -> None:
        """Rebuild the BM25 matrices from the log (compacting it when ids were replaced). A load passes the
        records it has just appended (the log's bytes after ``upto``), so only the log's first ``upto`` bytes
        are read back."""
        import bm25s

        latest: dict[str, dict[str, Any]] = {}
        n = 0
        records = self._read_log() if appended is None else itertools.chain(self._read_log(upto), appended)
        for rec in records:
            n += 1
            latest.pop(rec["id"], None)
            latest[rec["id"]] = rec
        if n != len(latest):  # compact: keep the last version of each id, in final order
            tmp = self.path / (LOG_NAME + ".tmp")
            with open(tmp, "w", encoding="utf-8") as fh:
                for rec in latest.values():
                    fh.write(_json_line(rec))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path / LOG_NAME)
            n = len(latest)
        self._rows = [(i, tuple(r.get("keyphrases") or ())) for i, r in latest.items()]
        self._ids = {doc_id: row for row, (doc_id, _) in enumerate(self._rows)}
        self._log_lines = n
        analyzer = Analyzer(self.stemmer_language, self.stopwords)
        timer = self.stage("tokenisation", items=len(latest)) if self.stage else contextlib.nullcontext()
        with timer:
            terms, doc_of, n_docs = analyzer.corpus_terms(f"{r.get('title', '')} {r.get('text', '')}"
                                                          for r in latest.values())
        del latest
        data, indices, indptr = bm25_matrix(terms, doc_of, n_docs, len(analyzer.vocab), self.k1, self.b)
        del terms, doc_of
        impact = impact_order(data, indices, indptr)  # what a query over the postings budget reads
        retriever = bm25s.BM25(k1=self.k1, b=self.b, method=self.method)
        retriever.scores = {"data": data, "indices": indices, "indptr": indptr, "num_docs": len(self._rows)}
        retriever.vocab_dict = analyzer.vocab
        retriever.unique_token_ids_set = set(analyzer.vocab.values())
        retriever.nonoccurrence_array = None  # only bm25l and bm25+ use it
        index_dir = self.path / "index"
        tmp_dir = self.path / "index.tmp"
        shutil.rmtree(tmp_dir, ignore_errors=True)
        retriever.save(tmp_dir, show_progress=False)
        for name, arr in zip(IMPACT, impact):
            np.save(tmp_dir / name, arr)
        with open(tmp_dir / "rows.jsonl", "w", encoding="utf-8") as fh:
            fh.writelines(_row_line(doc_id, kps) for doc_id, kps in self._rows)
        shutil.rmtree(index_dir, ignore_errors=True)
        os.replace(tmp_dir, index_dir)
        manifest = {"format": FORMAT_VERSION, "index": self.index, "documents": len(self._rows),
                    "log_lines": n, "log_bytes": (self.path / LOG_NAME).stat().st_size, "k1": self.k1, "b": self.b, "method": self.method,
                    "stemmer": self.stemmer_language, "stopwords": self.stopwords}
        _write_atomic(self.path / MANIFEST, json.dumps(manifest, indent=1))
        self._manifest_mtime = (self.path / MANIFEST).stat().st_mtime_ns
        self._retriever = retriever
        self._impact = impact
        self._scorer_cache = None
        self._idf_cache = None
        self._analyzer = analyzer
        self._opened = True

    def _load_matrices(self) -> None:
        """Load the matrices (an index written before the impact order has its impact order made when needed)."""
        import bm25s

        retriever = bm25s.BM25.load(self.path / "index", show_progress=False, verbosity=0)
        sc = retriever.scores
        if (int(sc["num_docs"]) != len(self._rows) or len(sc["indptr"]) != len(retriever.vocab_dict) + 1
                or len(sc["data"]) != len(sc["indices"]) or int(sc["indptr"][-1]) != len(sc["data"])):
            raise ValueError("the matrices do not match the document rows")
        self._manifest_mtime = (self.path / MANIFEST).stat().st_mtime_ns
        self._retriever = retriever
        self._impact = None
        if all((self.path / "index" / name).is_file() for name in IMPACT):
            i_data, i_indices = (np.load(self.path / "index" / name) for name in IMPACT)
            if len(i_data) != len(sc["data"]) or len(i_indices) != len(sc["data"]):
                raise ValueError("the impact-ordered postings do not match the matrix")
            self._impact = (i_data, i_indices)
        self._scorer_cache = None
        self._idf_cache = None
        self._analyzer = Analyzer(self.stemmer_language, self.stopwords, vocab=retriever.vocab_dict)
        self._opened = True


def _json_line(rec: dict[str, Any]) -> str:
    """``json.dumps(rec, ensure_ascii=False)`` and a newline; a log record of strings is encoded directly (faster)."""
    if list(rec) == ["id", "title", "text", "keyphrases"] and type(rec["keyphrases"]) is list:
        try:  # json's string encoder refuses anything but a string
            kps = ", ".join(map(_encode_str, rec["keyphrases"]))
            return (f'{{"id": {_encode_str(rec["id"])}, "title": {_encode_str(rec["title"])}, '
                    f'"text": {_encode_str(rec["text"])}, "keyphrases": [{kps}]}}\n')
        except TypeError:
            pass
    return json.dumps(rec, ensure_ascii=False) + "\n"


def _row_line(doc_id: str, keyphrases: Sequence[str]) -> str:
    """``json.dumps([doc_id, list(keyphrases)], ensure_ascii=False)`` and a newline (strings encoded directly)."""
    try:
        return f"[{_encode_str(doc_id)}, [{', '.join(map(_encode_str, keyphrases))}]]\n"
    except TypeError:
        return json.dumps([doc_id, list(keyphrases)], ensure_ascii=False) + "\n"


def _write_atomic(path: Path, text: str) -> None:
    """Write a small file by writing a temporary file next to it, fsync'ing it and renaming it into place."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
