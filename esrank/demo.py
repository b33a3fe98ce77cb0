"""The main job on the embedded default: sample corpus → index → fine-tune → rank → PRMU evaluation."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .corpus import Document, read_documents, sample_corpus_path, write_documents
from .evaluation.prmu import EvalResult, Significance, evaluate, score_document, significance_table
from .predictions import PredictionWriter
from .ranking.mix import MixFit, fit_mix, validation_split, write_fit
from .ranking.pipeline import DEFAULT_K, DEFAULT_METHOD, RankSettings, rank_documents
from .ranking.ranker import Ranker, RankStats
from .ranking.training import TrainConfig, train
from .retrieval.embedded import EmbeddedBackend

if TYPE_CHECKING:
    from .cost import CostTracker

Say = Callable[[str], None]


@dataclass
class DemoResult:
    """Where the demo wrote its outputs, and the evaluation it printed."""

    out_dir: Path
    predictions: dict[str, Path]
    result: EvalResult
    significance: list[Significance]
    timings: dict[str, RankStats] = field(default_factory=dict)
    mix: MixFit | None = None


def split_corpus(docs: list[Document], every: int = 5) -> tuple[list[Document], list[Document]]:
    """Deterministic split: every ``every``-th document of each domain is held out for testing."""
    seen: dict[str, int] = {}
    train_docs: list[Document] = []
    test_docs: list[Document] = []
    for d in docs:
        g = str(d.meta.get("domain") or d.meta.get("dataset") or "")
        i = seen[g] = seen.get(g, -1) + 1
        (test_docs if i % every == 0 else train_docs).append(d)
    return train_docs, test_docs


def run_demo(out_dir: str | Path, *, data: str | Path | None = None, epochs: int = 3, batch_size: int = 64,
             k: int = DEFAULT_K, top_n: int | None = None, threads: int | None = None, tracker: CostTracker | None = None,
             say: Say = print, rounds: int = 10_000) -> DemoResult:
    """Index the training part, fine-tune (a validation share held out fits the mix), rank the held-out
    part four ways (vote, zero-shot, fine-tuned, mix), evaluate every candidate's ranking (``top_n`` None)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    docs = list(read_documents(data or sample_corpus_path()))
    train_docs, test_docs = split_corpus(docs)
    write_documents(train_docs, out / "train.jsonl")
    write_documents(test_docs, out / "test.jsonl")
    tune_docs, validation = validation_split(train_docs)
    say(f"corpus: {len(docs)} documents → {len(train_docs)} for the index ({len(tune_docs)} fine-tuned on, "
        f"{len(validation)} to fit the mix), {len(test_docs)} held out")

    backend = EmbeddedBackend("demo", out / "index")
    backend.create(overwrite=True)
    try:
        if tracker is not None:
            with tracker.stage("index_loading", items=len(train_docs)):
                backend.bulk_add(train_docs)
        else:
            backend.bulk_add(train_docs)
        say(f"embedded BM25 index: {backend.count()} documents in {out / 'index'}")

        config = TrainConfig(batch_size=batch_size, mini_batch_size=min(batch_size, 32), epochs=epochs, lr=5e-5,
                             max_seq_length=192, threads=threads, warmup=0.1)
        say(f"fine-tuning all-MiniLM-L6-v2 with the masked MNR loss ({epochs} epochs, batch {batch_size}) ...")
        trained = train(tune_docs, out / "model", config, data_name="sample corpus (training part)",
                        resume=False, tracker=tracker)
        say(f"model: {trained.model_dir} ({trained.pairs} pairs, {trained.steps} steps, {trained.seconds:.0f}s)")
        tuned = Ranker.load(trained.model_dir, threads=threads, remember_documents=True)
        mix = None
        if validation:
            mix = fit_mix(validation, backend, tuned, score_document, k=k)
            write_fit(trained.model_dir, mix)
            say(mix.summary())

        preds: dict[str, Path] = {}
        timings: dict[str, RankStats] = {}
        systems: dict[str, dict[str, list[str]]] = {}
        runs: list[tuple[str, Ranker | None, str]] = [
            ("neighbour-vote", None, "vote"), ("zero-shot", Ranker.load(None, threads=threads), "model"),
            ("fine-tuned", tuned, "model"), ("mix", tuned, "mix")]
        say(f"ranking every candidate of the {len(test_docs)} held-out documents, k={k} "
            f"(`esrank rank` default method: {DEFAULT_METHOD})")
        for name, ranker, method in runs:
            path = out / "predictions" / f"{name}.jsonl"
            settings = RankSettings(k=k, top_n=top_n, method=method, mix_weight=mix.weight if mix else None,
                                    mix_model=mix.model if mix else None)
            stats = ranker.stats if ranker is not None else RankStats()
            before = RankStats(**{f: getattr(stats, f) for f in ("documents", "candidates", "empty_pools",
                                                                   "retrieval_s", "document_encoding_s",
                                                                   "candidate_encoding_s", "scoring_s")})
            with PredictionWriter(path) as w:
                written = list(rank_documents(test_docs, backend, ranker, settings, tracker=tracker,
                                              desc=name, stats=stats))
                w.write_all(written)
            timings[name] = _since(stats, before)
            systems[name] = {p.id: p.phrases for p in written}
            preds[name] = path
            say(f"{name}: {timings[name].summary()}")
    finally:
        backend.close()

    result = evaluate(test_docs, systems)
    sig = significance_table(result, "neighbour-vote", rounds=rounds)
    (out / "evaluation.json").write_text(json.dumps(
        {"rows": [r for r in result.table()], "significance": [s.__dict__ for s in sig],
         "mix": mix.to_json() if mix else None}, indent=1, default=str))
    return DemoResult(out, preds, result, sig, timings, mix)


def _since(stats: RankStats, before: RankStats) -> RankStats:
    """The part of cumulative ``stats`` added after ``before`` (the cache counts stay cumulative)."""
    return RankStats(documents=stats.documents - before.documents, candidates=stats.candidates - before.candidates,
                     empty_pools=stats.empty_pools - before.empty_pools,
                     retrieval_s=stats.retrieval_s - before.retrieval_s,
                     document_encoding_s=stats.document_encoding_s - before.document_encoding_s,
                     candidate_encoding_s=stats.candidate_encoding_s - before.candidate_encoding_s,
                     scoring_s=stats.scoring_s - before.scoring_s, cache=stats.cache)
