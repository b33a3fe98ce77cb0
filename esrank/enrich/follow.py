"""``esrank enrich --follow``: a long-running worker that keeps an index enriched.

Each round refreshes the target index and enriches the documents that lack an enrichment of this model and
version (new documents, documents re-indexed without the field), through the same pass as a one-off run:
point in time, ranking through ``esrank.ranking.pipeline``, bulk partial updates guarded by
``if_seq_no``/``if_primary_term``. Every ``recheck_interval`` seconds a round reads every document instead,
so that a document whose text changed since it was enriched (its stored source hash differs) is enriched
again. With nothing to do the worker sleeps ``poll_interval`` seconds.

The index itself is the checkpoint of the work: a document is done when it holds the enrichment, so a
killed worker loses nothing and a restarted one writes no document twice (a write that reached the server
before the kill makes the document done; a write racing another worker fails its ``if_seq_no`` check and
the document is re-read, found done and skipped). The checkpoint file (``--checkpoint``) keeps the rounds,
the totals and the time of the last full re-check across restarts, written atomically after each round.
SIGTERM or SIGINT stops the worker after the page in hand is written.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import ConfigError
from ..retrieval.factory import BackendOptions
from .job import EnrichReport, EnrichSettings, EnrichStats, not_done_query, open_run, run_pass
from .scan import count
from .write import ensure_mapping


@dataclass
class FollowState:
    """What survives a restart: rounds run, documents enriched, and when every document was last re-checked."""

    target_index: str = ""
    version: str = ""
    rounds: int = 0
    enriched: int = 0
    failed: int = 0
    last_full_scan: float = 0.0  # Unix time

    @classmethod
    def load(cls, path: str | Path | None, target_index: str, version: str) -> "FollowState":
        """The state in ``path`` when it is for the same index and version; a fresh state otherwise."""
        if path is None or not Path(path).exists():
            return cls(target_index, version)
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            state = cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        except (ValueError, TypeError) as e:
            raise ConfigError(f"not an esrank follow checkpoint: {e}", source=str(path)) from None
        if state.target_index != target_index or state.version != version:
            return cls(target_index, version)
        return state

    def save(self, path: str | Path | None) -> None:
        """Write the state atomically (a temporary file renamed into place)."""
        if path is None:
            return
        target = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or Path("."))
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(asdict(self), fh)
        os.replace(tmp, target)


@dataclass
class FollowReport:
    """Totals of a follow run (this process)."""

    model: str
    version: str
    rounds: int = 0
    stats: EnrichStats = field(default_factory=EnrichStats)
    state: FollowState = field(default_factory=FollowState)


RoundHook = Callable[[int, EnrichStats, bool], None]


def _announce(message: str) -> None:
    from .. import progress

    if not getattr(progress, "_quiet", False):
        print(f"esrank: {message}", file=sys.stderr, flush=True)


def follow_index(options: BackendOptions, settings: EnrichSettings, *, method: str = "model",
                 model: str | None = None, device: str = "auto", precision: str = "auto",
                 threads: int | None = None, max_seq_length: int | None = None, poll_interval: float = 30.0,
                 recheck_interval: float = 3600.0, checkpoint: str | Path | None = None,
                 stop: threading.Event | None = None, max_rounds: int | None = None,
                 on_round: RoundHook | None = None) -> FollowReport:
    """Keep ``settings.target_index`` enriched until ``stop`` is set (or SIGTERM/SIGINT, or ``max_rounds``)."""
    if settings.dry_run or settings.pit_id:
        raise ConfigError("--follow opens a point in time per round and writes: it takes neither --dry-run nor "
                          "--pit-id")
    if poll_interval <= 0 or recheck_interval < 0:
        raise ConfigError("--poll-interval must be positive and --recheck-interval at least 0")
    stop = stop or threading.Event()
    setup = open_run(options, settings, method, model, device, precision, threads, None, max_seq_length)
    try:
        cluster = setup.cluster
        report = FollowReport(setup.model, setup.version)
        state = report.state = FollowState.load(checkpoint, settings.target_index, setup.version)
        mapping = ensure_mapping(cluster, settings.target_index, settings.field, settings.text_fields)
        _announce(f"follow: {mapping}; enriching '{settings.target_index}' with model {setup.model} version "
                  f"{setup.version}, every {poll_interval:g}s when idle")
        with _stop_on_signals(stop):
            while not stop.is_set() and (max_rounds is None or report.rounds < max_rounds):
                cluster.refresh(settings.target_index)
                full = recheck_interval > 0 and time.time() - state.last_full_scan >= recheck_interval
                query = settings.query if full else not_done_query(settings, setup.model, setup.version)
                todo = count(cluster, settings.target_index, query)
                stats = EnrichStats()
                if todo:
                    started = time.time()
                    stats = run_pass(setup, settings, EnrichReport(stats, setup.model, setup.version), query,
                                      None, None, stop=stop, total=todo)
                    if full and not stop.is_set():
                        state.last_full_scan = started
                report.rounds += 1
                report.stats.add(stats)
                report.stats.seconds += stats.seconds
                state.rounds += 1
                state.enriched += stats.enriched
                state.failed += len(stats.failed)
                state.save(checkpoint)
                if stats.enriched or stats.failed:
                    _announce(f"follow: round {state.rounds}{' (full re-check)' if full else ''}: "
                              f"{stats.summary()}")
                if on_round is not None:
                    on_round(report.rounds, stats, full)
                if not (stats.enriched or stats.redone):  # nothing new: wait for documents to arrive
                    stop.wait(poll_interval)
        return report
    finally:
        setup.backend.close()
        setup.cluster.close()


class _stop_on_signals:
    """Within the block, SIGTERM and SIGINT set ``stop`` (the worker ends after the page in hand)."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> "_stop_on_signals":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if not self.stop.is_set():
            _announce(f"follow: {signal.Signals(signum).name}: stopping after the documents in hand are written")
        self.stop.set()

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
