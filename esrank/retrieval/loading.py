"""Bulk loading: read a corpus, skip what the index already holds (``resume``), add the rest, account for all.

Every kept record ends up indexed, already present (``--resume``) or failed; failures are written with
their reason to a dead-letter file that ``esrank load`` can read again. At the end the index count is
checked against what the load created.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, TextIO

from ..corpus import Document, Fields, OnError, ReadStats, RejectSink, chunked, read_documents
from ..errors import BackendError, InputError
from ..progress import bar
from .base import Backend


@dataclass
class LoadReport:
    """What a load did: every read record is accounted for."""

    index: str
    backend: str
    stats: ReadStats = field(default_factory=ReadStats)  # read / kept / skipped (bad records)
    indexed: int = 0
    created: int = 0
    already_present: int = 0  # skipped by --resume
    failed: list[tuple[str, str]] = field(default_factory=list)
    retried: int = 0
    maybe_created: int = 0  # replaced after a resent request: the lost attempt may have created them
    count_before: int = 0
    count_after: int = 0
    seconds: float = 0.0
    dead_letter: str | None = None

    @property
    def balanced(self) -> bool:
        """indexed + already present + failed = kept, and the index grew by the created documents (plus at most
        those a lost, resent request may have created)."""
        sent_ok = self.indexed + self.already_present + len(self.failed) == self.stats.kept
        low = self.count_before + self.created
        return sent_ok and low <= self.count_after <= low + self.maybe_created

    @property
    def docs_per_second(self) -> float:
        """Indexing rate over the whole load."""
        return self.indexed / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """One line for the terminal."""
        s = (f"{self.backend} index '{self.index}': read {self.stats.read}, indexed {self.indexed} "
             f"({self.created} new), skipped {self.stats.skipped + self.already_present} "
             f"({self.stats.skipped} bad records, {self.already_present} already indexed), failed {len(self.failed)}; "
             f"index holds {self.count_after} documents; {self.seconds:.1f}s, {self.docs_per_second:.0f} docs/s")
        if self.retried:
            s += f"; {self.retried} retries"
        if self.failed and self.dead_letter:
            s += f"; failures written to {self.dead_letter}"
        return s


class DeadLetter:
    """A JSONL file of documents that could not be indexed, with the reason (re-loadable by ``esrank load``)."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = str(path) if path else None
        self._fh: TextIO | None = None

    def write(self, doc: Document, reason: str) -> None:
        """Record one failed document."""
        if self.path is None:
            return
        if self._fh is None:
            self._fh = open(self.path, "w", encoding="utf-8")
        rec = {"id": doc.id, "title": doc.title, "abstract": doc.text, "keyphrases": list(doc.keyphrases),
               "esrank_error": reason}
        self._fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self._fh.flush()

    def close(self) -> None:
        """Close the file (it is only created when something failed)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def load_corpus(backend: Backend, path: str | Path, *, fields: Fields | None = None, fmt: str | None = None,
                on_error: OnError = "fail", rejects: str | Path | None = None, batch_size: int = 500,
                resume: bool = False, dead_letter: str | Path | None = None) -> LoadReport:
    """Load a corpus file into an opened backend; see the module docstring."""
    report = LoadReport(index=getattr(backend, "index", "?"), backend=backend.name)
    dl = DeadLetter(dead_letter)
    report.dead_letter = dl.path
    report.count_before = backend.count()
    start = time.perf_counter()
    progress = bar(desc=f"load {report.index}", unit="doc")

    stopped: list[InputError] = []  # an input error ends the stream; what was read before it is still indexed

    def until_error(docs: Iterator[Document]) -> Iterator[Document]:
        try:
            yield from docs
        except InputError as e:
            stopped.append(e)

    def stream() -> Iterator[Document]:
        with RejectSink(rejects) as sink:
            docs = read_documents(path, fields=fields, fmt=fmt, on_error=on_error, rejects=sink,
                                  stats=report.stats)
            for chunk in chunked(until_error(docs), batch_size):
                if resume and report.count_before:
                    present = backend.ids_present([d.id for d in chunk])
                    if present:
                        report.already_present += len(present)
                        progress.update(len(present))
                        chunk = [d for d in chunk if d.id not in present]
                yield from chunk
                progress.update(len(chunk))

    def failed(doc: Document, reason: str) -> None:
        report.failed.append((doc.id, reason))
        dl.write(doc, reason)

    try:
        result = backend.bulk_add(stream(), batch_size=batch_size, on_failure=failed)
    finally:
        progress.close()
        dl.close()
        report.seconds = time.perf_counter() - start
    report.indexed, report.created, report.retried = result.indexed, result.created, result.retried
    report.maybe_created = result.maybe_created
    for item in result.failed:  # backends that report failures only in the result
        if item not in report.failed:
            report.failed.append(item)
    report.count_after = backend.count()
    if not report.balanced:
        raise BackendError(f"load into '{report.index}' does not add up: {report.summary()} "
                           f"(expected {report.count_before + report.created} documents in the index)")
    if stopped:
        e = stopped[0]
        raise InputError(f"{e.reason}; the load stopped there: the {report.indexed} documents read before were "
                         f"indexed ({report.created} new), index '{report.index}' holds {report.count_after}; fix "
                         "the input and load it again with --resume", source=e.source, line=e.line)
    return report
