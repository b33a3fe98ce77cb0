"""The Python API for embedding esrank in a service: ``KeyphraseRanker.open(index=..., model=...)``, then
``predict("title. abstract")`` → ranked keyphrases. A thin handle over the one ranking path
(``retrieval.factory.open_backend`` + ``ranking.ranker.Ranker`` + ``ranking.pipeline.rank_documents``)."""
from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence, Union

from ..corpus import Document
from ..errors import ConfigError, InputError
from ..predictions import Prediction, ScoredPhrase
from ..retrieval.base import Backend
from ..retrieval.factory import BackendOptions, open_backend
from .mix import resolve_mix
from .pipeline import DEFAULT_BATCH, DEFAULT_METHOD, METHODS, RankSettings, rank_documents
from .ranker import Ranker, RankStats

# what predict() takes: "title. abstract" as one string, a mapping {id?, title, text|abstract}, or a Document
DocumentLike = Union[str, Mapping[str, Any], Document]
TEXT_KEYS = ("text", "abstract", "body", "content")
_QUERY_PREFIX = "esrank-query-"  # ids of documents given without one (never the id of an indexed document)


def _backend_options(index: str, url: str | None, path: str | os.PathLike[str] | None, backend: str,
                     **connection: Any) -> BackendOptions:
    """``BackendOptions`` for an embedded index (no URL) or an index on a server."""
    if url is None:
        return BackendOptions(index, backend, path=None if path is None else str(path))
    return BackendOptions.server(index, url, backend=backend, **connection)


class KeyphraseRanker:
    """An open index and model that rank keyphrases for documents; close it (or use ``with``) when done.

    >>> with KeyphraseRanker.open(index="kp", model="model/") as ranker:      # doctest: +SKIP
    ...     for kp in ranker.predict("Deep learning for retrieval. We study ..."):
    ...         print(kp.phrase, kp.score, kp.category)
    """

    def __init__(self, backend: Backend, ranker: Ranker | None, settings: RankSettings, *, index: str,
                 model: str | None, method: str) -> None:
        self.backend = backend
        self.ranker = ranker
        self.settings = settings
        self.index = index
        self.model = model
        self.method = method
        self.vote_stats = RankStats()
        self._counter = itertools.count()
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def open(cls, index: str, model: str | os.PathLike[str] | None = None, *, url: str | None = None,
             path: str | os.PathLike[str] | None = None, backend: str = "auto", method: str = DEFAULT_METHOD,
             mix_weight: float | None = None, k: int | None = None, top_n: int | None = None, batch_size: int = DEFAULT_BATCH, exclude_self: bool = True,
             device: str = "auto", precision: str = "auto", threads: int | None = None,
             max_doc_tokens: int | None = None, disk_cache: bool | str | os.PathLike[str] = False,
             api_key: str | None = None, username: str | None = None, password: str | None = None,
             ca_certs: str | None = None, verify_certs: bool = True, timeout: float = 60.0,
             options: BackendOptions | None = None) -> "KeyphraseRanker":
        """Open an index (embedded by default; ``url`` for Elasticsearch/OpenSearch) and load the model once.

        ``method``: mix (the default: cosine combined with the neighbour evidence by the model card's fitted mix
        model, or linearly with ``mix_weight`` when given), model (bi-encoder cosine) or vote (neighbour vote, no model loaded);
        ``k``: neighbours (None: the pipeline's default); ``top_n``: keyphrases per document (None: all).
        """
        if method not in METHODS:
            raise ConfigError(f"method takes one of {', '.join(METHODS)}, not {method!r}")
        kw: dict[str, Any] = {"batch_size": batch_size, "exclude_self": exclude_self, "top_n": top_n,
                              "method": method}
        if k is not None:
            kw["k"] = k
        settings = RankSettings(**kw)
        settings.mix_weight, settings.mix_model, _ = resolve_mix(method, mix_weight, settings.k,
                                                                 None if model is None else str(model))
        settings.validate()
        if options is None:
            options = _backend_options(index, url, path, backend, api_key=api_key, username=username,
                                       password=password, ca_certs=ca_certs, verify_certs=verify_certs,
                                       timeout=timeout)
        opened = open_backend(options)  # first: a missing index fails before the model is loaded
        ranker = None
        try:
            if method != "vote":
                ranker = Ranker.load(model, device=device, precision=precision, threads=threads,
                                     disk_cache=disk_cache, max_seq_length=max_doc_tokens)
        except BaseException:
            opened.close()
            raise
        from .profiles import missing_profiles_note

        missing = missing_profiles_note(settings.mix_model if method == "mix" else None, ranker)
        if missing:
            logging.getLogger(__name__).warning(missing)
        name = None if method == "vote" else (str(model) if model is not None else "all-MiniLM-L6-v2")
        return cls(opened, ranker, settings, index=options.index, model=name, method=method)

    # -- documents in ----------------------------------------------------------------------------------------

    def to_document(self, doc: DocumentLike) -> Document:
        """A ``Document`` from a string ("title. abstract"), a mapping {id?, title, text} or a Document."""
        if isinstance(doc, Document):
            return doc
        if isinstance(doc, str):
            if not doc.strip():
                raise InputError("empty document")
            return Document(self._new_id(), "", doc)
        if isinstance(doc, Mapping):
            title = doc.get("title") or ""
            text = next((doc[key] for key in TEXT_KEYS if doc.get(key)), "")
            if not isinstance(title, str) or not isinstance(text, str):
                raise InputError("'title' and 'text' must be strings")
            if not (title.strip() or text.strip()):
                raise InputError("a document needs a non-empty 'title' or 'text'")
            raw_id = doc.get("id")
            if raw_id is not None and not isinstance(raw_id, (str, int)):
                raise InputError("'id' must be a string or a number")
            return Document(str(raw_id) if raw_id is not None else self._new_id(), title, text)
        raise InputError(f"a document is a string, a mapping or a Document, not {type(doc).__name__}")

    def _new_id(self) -> str:
        return f"{_QUERY_PREFIX}{next(self._counter)}"

    # -- ranking ---------------------------------------------------------------------------------------------

    def rank(self, documents: Iterable[Document]) -> Iterator[Prediction]:
        """Predictions for documents (ids kept), through the one ranking path; yields in input order."""
        if self._closed:
            raise ConfigError("this KeyphraseRanker is closed")
        settings = self.settings
        if isinstance(documents, Sequence) and len(documents) <= settings.batch_size:
            settings = dataclasses.replace(settings, overlap=False)  # one batch (a service request): nothing to overlap
        return rank_documents(documents, self.backend, self.ranker, settings, stats=self.vote_stats, desc="ranking")

    def predict(self, doc: DocumentLike) -> list[ScoredPhrase]:
        """Ranked keyphrases (phrase, score, PRMU category) of one document, best first."""
        return self.predict_many([doc])[0]

    def predict_many(self, docs: Sequence[DocumentLike]) -> list[list[ScoredPhrase]]:
        """Ranked keyphrases of each document, in input order."""
        return [p.keyphrases for p in self.rank_all([self.to_document(d) for d in docs])]

    def rank_all(self, documents: Sequence[Document]) -> list[Prediction]:
        """Predictions for documents (ids kept), in input order; safe to call from several threads."""
        with self._lock:  # the encoder and its cache are not shared between threads
            return list(self.rank(documents))

    @property
    def stats(self) -> RankStats:
        """Cumulative counts and time split of everything ranked so far."""
        return self.ranker.stats if self.ranker is not None else self.vote_stats

    def info(self) -> dict[str, Any]:
        """What is loaded: model, index, k, top_n, method, esrank version."""
        from .. import __version__

        model = self.model
        if model is not None and Path(model).is_dir():
            model = Path(model).resolve().name  # a directory is named by its last part, not a machine path
        return {"model": model, "index": self.index, "backend": self.backend.name,
                "k": self.settings.k, "top_n": self.settings.top_n, "method": self.method,
                "version": __version__}

    # -- lifetime --------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the backend and the model's caches (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.backend.close()
        finally:
            if self.ranker is not None:
                self.ranker.close()

    def __enter__(self) -> "KeyphraseRanker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["KeyphraseRanker", "DocumentLike"]
