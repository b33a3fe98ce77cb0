"""Enrichment of a live Elasticsearch/OpenSearch index: each stored document gets the keyphrases esrank
predicts for it (present and absent) in one field, so that BM25 finds it by the words it lacks.

The target index is read over a point in time with ``search_after`` (one slice per worker), each page is
ranked like ``esrank rank`` does (neighbours in the training index → candidate pool → ranker) and written
back with bulk partial updates of that one field, guarded by ``if_seq_no``/``if_primary_term``: a
document changed by someone else meanwhile is re-read and redone, never overwritten with stale content.
Documents already enriched by the same model and version are skipped, so runs are idempotent and an
interrupted run is finished by running it again (``resume`` does not even read the finished ones).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from .. import __version__
from ..corpus import Document
from ..errors import ConfigError
from ..predictions import Prediction
from ..progress import bar
from ..ranking import pipeline
from ..ranking.mix import resolve_mix
from ..ranking.pipeline import DEFAULT_K, RankSettings, rank_documents
from ..ranking.ranker import Ranker, RankStats
from ..retrieval.cluster import WILDCARD_CHARS, Cluster, check_index_name
from ..retrieval.factory import BackendOptions, connect, open_backend
from .scan import Hit, PointInTime, SliceSpec, count, reread, scan
from .write import RANK_FEATURES, ensure_mapping, write_updates

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from ..cost import CostTracker

BatchHook = Callable[[Sequence[str]], None]


@dataclass
class EnrichSettings:
    """What to enrich and how (see ``esrank enrich --help``)."""

    target_index: str
    text_fields: tuple[str, ...] = ("title", "abstract")
    field: str = "esrank"
    only_absent: bool = False
    top_n: int = 10
    min_score: float | None = None
    query: dict[str, Any] | None = None
    k: int = DEFAULT_K
    batch_size: int = 64
    slices: int = 1  # parallel workers in this process
    slice_id: int = 0  # this process's part of the index, of slice_max parts (one command per machine)
    slice_max: int = 1
    dry_run: bool = False
    samples: int = 3
    resume: bool = False
    force: bool = False
    exclude_self: bool | None = None  # None: when the target is the training index
    rate: float | None = None  # documents per second at most (this process)
    max_redo: int = 5  # re-reads of a document that keeps changing before it is given up
    version: str | None = None  # default: esrank version + fingerprint of model and settings
    pit_id: str | None = None  # a point in time opened elsewhere, shared by the machines of one run
    keep_alive: str = "10m"  # of the point in time, renewed by every page
    allow_wildcards: bool = False  # a target pattern or comma list (it may match the training index too)

    def validate(self) -> None:
        """Raise ConfigError on an impossible setting."""
        if not self.text_fields or any(not f for f in self.text_fields):
            raise ConfigError("--text-fields needs at least one field name")
        if not self.field or self.field.startswith("_") or "." in self.field:
            raise ConfigError(f"invalid --field {self.field!r} (a top-level field name, not starting with _)")
        if self.field in self.text_fields:
            raise ConfigError(f"--field {self.field} is one of the --text-fields")
        if self.top_n < 1 or self.k < 1 or self.batch_size < 1 or self.slices < 1:
            raise ConfigError("--top-n, -k, --batch-size and --slices must be at least 1")
        if self.slice_max < 1 or not 0 <= self.slice_id < self.slice_max:
            raise ConfigError(f"--slice-id must be between 0 and --slice-max - 1 ({self.slice_max - 1})")
        if self.rate is not None and self.rate <= 0:
            raise ConfigError("--rate must be positive")
        if any(c in self.target_index for c in WILDCARD_CHARS) and not self.allow_wildcards:
            raise ConfigError(f"--target-index {self.target_index!r} is a pattern or a list: it may match more "
                              "indices than meant (the training index too); name one index or alias, or add "
                              "--allow-wildcards")
        check_index_name(self.target_index, allow_wildcards=self.allow_wildcards, what="--target-index")


@dataclass
class EnrichStats:
    """Counts of a run: every document seen is enriched, skipped (with its reason) or failed."""

    seen: int = 0
    enriched: int = 0
    without_keyphrases: int = 0  # of ``enriched``: nothing passed the filters (an empty list is written)
    already_done: int = 0  # skipped: enriched before by the same model and version
    missing_text: int = 0  # skipped: none of the text fields has text
    deleted: int = 0  # skipped: deleted while being enriched
    redone: int = 0  # documents changed concurrently, re-read and redone
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def skipped(self) -> int:
        """Documents skipped for any reason."""
        return self.already_done + self.missing_text + self.deleted

    def add(self, other: "EnrichStats") -> None:
        """Add another worker's counts."""
        for name in ("seen", "enriched", "without_keyphrases", "already_done", "missing_text", "deleted", "redone"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failed.extend(other.failed)

    def summary(self, dry_run: bool = False) -> str:
        """One line for the terminal."""
        rate = self.seen / self.seconds if self.seconds > 0 else 0.0
        verb = "would enrich" if dry_run else "enriched"
        return (f"seen {self.seen}, {verb} {self.enriched} ({self.without_keyphrases} with no keyphrase), "
                f"skipped {self.skipped} ({self.already_done} already enriched by this model and version, "
                f"{self.missing_text} missing the text fields, {self.deleted} deleted during the run), "
                f"failed {len(self.failed)}; {self.redone} changed during the run and redone; "
                f"{self.seconds:.1f}s, {rate:.1f} docs/s")

    def failure_reasons(self) -> list[tuple[str, int]]:
        """Distinct failure reasons with their counts, most frequent first."""
        return Counter(reason for _, reason in self.failed).most_common()


@dataclass
class EnrichReport:
    """What a run did: its counts, the model and version written, and (dry run) sample documents."""

    stats: EnrichStats
    model: str
    version: str
    mapping: str = ""
    before: int | None = None  # with resume: documents enriched before this run (not read again)
    samples: list[dict[str, Any]] = field(default_factory=list)


def text_of(source: dict[str, Any], path: str) -> str:
    """The text at a dotted path of a document source (lists of strings joined), '' when absent."""
    value: Any = source
    for part in path.split("."):
        if not isinstance(value, dict):
            return ""
        value = value.get(part)
    if isinstance(value, list):
        return "\n".join(v.strip() for v in value if isinstance(v, str) and v.strip())
    return value.strip() if isinstance(value, str) else ""


def to_document(hit: Hit, text_fields: Sequence[str]) -> Document | None:
    """The document a hit's text fields make (first field = title), or None when they hold no text."""
    texts = [text_of(hit.source, f) for f in text_fields]
    if not any(texts):
        return None
    if len(texts) == 1:
        return Document(hit.id, "", texts[0])
    return Document(hit.id, texts[0], ". ".join(t for t in texts[1:] if t))


def select(prediction: Prediction, top_n: int, min_score: float | None, only_absent: bool) -> list[Any]:
    """The kept keyphrases of a prediction: score at least ``min_score``, absent only if asked, at most ``top_n``."""
    kept = [k for k in prediction.keyphrases
            if (min_score is None or (k.score is not None and k.score >= min_score))
            and (not only_absent or k.category != "P")]
    return kept[:top_n]


def source_hash(source: dict[str, Any], text_fields: Sequence[str]) -> str:
    """A short hash of the text fields a document is enriched from (to notice a changed source)."""
    key = json.dumps([text_of(source, f) for f in text_fields], ensure_ascii=False)
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]


MIN_FEATURE = 1e-4  # rank_features values must be positive


def feature_name(phrase: str) -> str:
    """A phrase as a ``rank_features`` key (dots would be read as object paths: they become spaces)."""
    return " ".join(phrase.replace(".", " ").split())


def payload(prediction: Prediction, settings: EnrichSettings, model: str, version: str, *,
            digest: str | None = None, features: bool = False) -> dict[str, Any]:
    """The value written to the enrichment field of one document."""
    kept = select(prediction, settings.top_n, settings.min_score, settings.only_absent)
    value: dict[str, Any] = {
        "keyphrases": [k.to_json() for k in kept],
        "absent": [k.phrase for k in kept if k.category != "P"],
        "model": model,
        "version": version,
        "enriched_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    if digest is not None:
        value["source_hash"] = digest
    if features:
        scores: dict[str, float] = {}
        for k in kept:
            name = feature_name(k.phrase)
            if name and name not in scores:
                scores[name] = max(float(k.score if k.score is not None else 0.0), MIN_FEATURE)
        value[RANK_FEATURES] = scores
    return value


class _Worker:
    """Reads one slice, ranks its pages and writes them back (one thread)."""

    def __init__(self, job: "_Job", ranker: Ranker | None, slice_spec: SliceSpec, tracker: CostTracker | None) -> None:
        self.job = job
        self.ranker = ranker
        self.slice_spec = slice_spec
        self.tracker = tracker
        self.stats = EnrichStats()
        self.rank_stats = RankStats()

    def run(self) -> None:
        job, s = self.job, self.job.settings
        started = time.perf_counter()
        for page in scan(job.cluster, job.pit, query=job.query, source=job.source, page_size=s.batch_size,
                         slice_spec=self.slice_spec):
            if job.stop.is_set():
                return
            self.stats.seen += len(page)
            if job.on_batch_read is not None:
                job.on_batch_read([h.id for h in page])
            self.process(page)
            job.progress.update(len(page))
            if s.rate:  # keep this worker at its share of the rate
                wait = self.stats.seen / (s.rate / job.workers) - (time.perf_counter() - started)
                if wait > 0:
                    time.sleep(wait)

    def process(self, hits: list[Hit]) -> None:
        job, s, st = self.job, self.job.settings, self.stats
        pending = hits
        for attempt in range(s.max_redo + 1):
            todo: list[tuple[Hit, Document]] = []
            for h in pending:
                doc = to_document(h, s.text_fields)
                if not s.force and job.is_done(h):
                    st.already_done += 1
                elif doc is None:
                    st.missing_text += 1
                else:
                    todo.append((h, doc))
            if not todo:
                return
            preds = self.rank([d for _, d in todo])
            updates = [(h, payload(p, s, job.model, job.version, digest=source_hash(h.source, s.text_fields),
                                   features=job.features)) for (h, _), p in zip(todo, preds)]
            empty = {h.id for h, u in updates if not u["keyphrases"]}
            if s.dry_run:
                st.enriched += len(updates)
                st.without_keyphrases += len(empty)
                job.keep_samples(updates)
                return
            res = write_updates(job.cluster, s.field, updates)
            st.enriched += len(res.written)
            st.without_keyphrases += sum(1 for i in res.written if i in empty)
            st.deleted += len(res.deleted)
            st.failed.extend(res.failed)
            if not res.conflicts:
                return
            if attempt == s.max_redo:
                st.failed.extend((i, f"changed concurrently {s.max_redo + 1} times in a row") for i in res.conflicts)
                return
            st.redone += len(res.conflicts)
            changed = set(res.conflicts)
            current = reread(job.cluster, [h for h in pending if h.id in changed], job.source)
            st.deleted += sum(1 for v in current.values() if v is None)
            pending = [v for v in current.values() if v is not None]

    def rank(self, docs: list[Document]) -> list[Prediction]:
        """Rank a page through the one ranking path (``esrank.ranking.pipeline.rank_documents``)."""
        s = self.job.settings
        rs = RankSettings(k=s.k, top_n=None, batch_size=len(docs), exclude_self=self.job.exclude_self,
                          **self.job.method_settings)
        return list(rank_documents(docs, self.job.backend, self.ranker, rs, tracker=self.tracker,
                                   stats=self.rank_stats, desc="ranking page"))


@dataclass
class _Job:
    """State shared by the workers of one run."""

    settings: EnrichSettings
    cluster: Cluster
    backend: Any
    model: str
    version: str
    query: dict[str, Any] | None
    source: list[str]
    exclude_self: bool
    workers: int
    pit: Any = None
    progress: Any = None
    on_batch_read: BatchHook | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    samples: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    features: bool = False  # write the rank_features sub-field
    method_settings: dict[str, Any] = field(default_factory=dict)

    def is_done(self, hit: Hit) -> bool:
        """Whether the document holds an enrichment of this model and version, made from its current text."""
        value = hit.source.get(self.settings.field)
        if not (isinstance(value, dict) and value.get("model") == self.model and value.get("version") == self.version):
            return False
        stored = value.get("source_hash")
        return stored is None or stored == source_hash(hit.source, self.settings.text_fields)

    def keep_samples(self, updates: list[tuple[Hit, dict[str, Any]]]) -> None:
        """Remember the first documents of a dry run."""
        with self.lock:
            for hit, value in updates:
                if len(self.samples) < self.settings.samples:
                    self.samples.append({"id": hit.id, self.settings.field: value})


def enrichment_version(settings: EnrichSettings, model: str, fingerprint: str, training_index: str) -> str:
    """esrank's version and a fingerprint of everything that changes the enrichment of a document."""
    if settings.version:
        return settings.version
    key = json.dumps([model, fingerprint, training_index, settings.k, settings.top_n, settings.min_score,
                      settings.only_absent, list(settings.text_fields)])
    return f"{__version__}+{hashlib.sha1(key.encode()).hexdigest()[:10]}"


@dataclass
class RunSetup:
    """What every pass of a run shares: connections, ranker, model name and version."""

    cluster: Cluster
    backend: Any
    ranker: Ranker | None
    model: str
    version: str
    exclude_self: bool
    source: list[str]
    features: bool
    method_settings: dict[str, Any]


def open_run(options: BackendOptions, settings: EnrichSettings, method: str, model: str | None, device: str,
          precision: str, threads: int | None, tracker: CostTracker | None, max_seq_length: int | None) -> RunSetup:
    """Connect to the server, open the training index and load the ranker."""
    settings.validate()
    if method not in pipeline.METHODS:
        raise ConfigError(f"unknown --method {method!r} ({', '.join(pipeline.METHODS)})")
    if not options.url:
        raise ConfigError("esrank enrich works on an Elasticsearch/OpenSearch index: give --url (or ESRANK_URL)")
    cluster = connect(options)
    backend = None
    try:
        backend = open_backend(options)
        ranker = None
        if method != "vote":
            ranker = Ranker.load(model, device=device, precision=precision, threads=threads,
                                 max_seq_length=max_seq_length)
            if tracker is not None:
                tracker.set_device(ranker.encoder.device)
            # a model directory is named by its last part (its weights are in the version's fingerprint)
            name = Path(model).name if model and Path(model).exists() else (model or "all-MiniLM-L6-v2")
            fingerprint = ranker.encoder.fingerprint + ("" if method == "model" else f"+{method}")
        else:
            name, fingerprint = "vote", "vote"
        version = enrichment_version(settings, name, fingerprint, options.index)
        exclude = settings.exclude_self if settings.exclude_self is not None \
            else settings.target_index == options.index
        source = [*settings.text_fields, f"{settings.field}.model", f"{settings.field}.version",
                  f"{settings.field}.source_hash"]
        weight, mix_model, note = resolve_mix(method, None, settings.k, model)
        if note:
            log.warning(note)
        from ..ranking.profiles import missing_profiles_note

        missing = missing_profiles_note(mix_model if method == "mix" else None, ranker)
        if missing:
            log.warning(missing)
        method_settings = {"method": method, "mix_weight": weight, "mix_model": mix_model}
        features = cluster.has_module("mapper-extras")
        return RunSetup(cluster, backend, ranker, name, version, exclude, source, features, method_settings)
    except BaseException:
        if backend is not None:
            backend.close()
        cluster.close()
        raise


def not_done_query(settings: EnrichSettings, model: str, version: str) -> dict[str, Any]:
    """The documents of the target (and ``--query``) not yet enriched by this model and version."""
    done = {"bool": {"filter": [{"term": {f"{settings.field}.model": model}},
                                {"term": {f"{settings.field}.version": version}}]}}
    return {"bool": {"must": [settings.query or {"match_all": {}}], "must_not": [done]}}


def run_pass(setup: RunSetup, settings: EnrichSettings, report: EnrichReport, query: dict[str, Any] | None,
              tracker: CostTracker | None, on_batch_read: BatchHook | None, stop: threading.Event | None = None,
              total: int | None = None) -> EnrichStats:
    """One pass over the target index (one point in time): read, rank and write every matching document."""
    cluster = setup.cluster
    job = _Job(settings, cluster, setup.backend, setup.model, setup.version, query, setup.source,
               setup.exclude_self, settings.slices, on_batch_read=on_batch_read, features=setup.features,
               method_settings=setup.method_settings)
    if stop is not None:
        job.stop = stop
    n = settings.slices
    specs = [SliceSpec(settings.slice_id * n + i, settings.slice_max * n) for i in range(n)]
    ranker = setup.ranker
    rankers = [ranker] + [Ranker(ranker.encoder) if ranker is not None else None for _ in range(n - 1)]
    workers = [_Worker(job, r, spec, tracker if n == 1 else None) for r, spec in zip(rankers, specs)]
    started = time.perf_counter()
    stats = EnrichStats()
    with PointInTime(cluster, settings.target_index, settings.keep_alive, settings.pit_id) as pit, \
            bar(total=total, desc="enriching", unit="doc") as progress:
        job.pit, job.progress = pit, progress
        stage = tracker.stage("enrichment") if tracker is not None else contextlib.nullcontext()
        with stage as run:
            _run_workers(workers, job)
            seen = sum(w.stats.seen for w in workers)
            if run is not None:
                run.add(seen)
    for w in workers:
        stats.add(w.stats)
    stats.seconds = time.perf_counter() - started
    report.samples = job.samples
    return stats


def enrich_index(options: BackendOptions, settings: EnrichSettings, *, method: str = "model",
                 model: str | None = None, device: str = "auto", precision: str = "auto",
                 threads: int | None = None, tracker: CostTracker | None = None,
                 on_batch_read: BatchHook | None = None, max_seq_length: int | None = None) -> EnrichReport:
    """Enrich the documents of ``settings.target_index`` with keyphrases ranked from the training index
    ``options.index`` (``method`` ``model``: the bi-encoder; ``vote``: the neighbour-vote baseline)."""
    setup = open_run(options, settings, method, model, device, precision, threads, tracker, max_seq_length)
    try:
        cluster = setup.cluster
        report = EnrichReport(EnrichStats(), setup.model, setup.version)
        query = dict(settings.query) if settings.query else None
        if settings.resume and not settings.force:
            query = not_done_query(settings, setup.model, setup.version)
            report.before = count(cluster, settings.target_index, {"bool": {"filter": [
                settings.query or {"match_all": {}}, *query["bool"]["must_not"]]}})
        if not settings.dry_run:
            report.mapping = ensure_mapping(cluster, settings.target_index, settings.field, settings.text_fields)
        total = count(cluster, settings.target_index, query) if settings.slice_max == 1 else None
        report.stats = run_pass(setup, settings, report, query, tracker, on_batch_read, total=total)
        return report
    finally:
        setup.backend.close()
        setup.cluster.close()


def _run_workers(workers: list[_Worker], job: _Job) -> None:
    """Run the workers (in threads when there are several); the first error stops all and is raised."""
    if len(workers) == 1:
        workers[0].run()
        return
    errors: list[BaseException] = []

    def target(w: _Worker) -> None:
        try:
            w.run()
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            errors.append(e)
            job.stop.set()

    threads = [threading.Thread(target=target, args=(w,), daemon=True, name=f"enrich-{i}")
               for i, w in enumerate(workers)]
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.2)
    except KeyboardInterrupt:
        job.stop.set()
        raise
    if errors:
        raise errors[0]
