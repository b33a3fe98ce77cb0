"""Ranking quality on held-out data: fine-tuned vs zero-shot vs neighbour vote (and the loss ablation).

The only keyphrase corpus available offline is the bundled sample (90 documents, 3 domains), so quality is measured
by k-fold cross-validation over it: each fold indexes and fine-tunes on the other folds and ranks its own documents;
the predictions of all folds are pooled and evaluated once (every document is held out exactly once).

Run: python3 bench/quality.py [--folds 5] [--epochs 3] [--losses masked-mnr,mnr,multilabel-supcon] [--data FILE]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import machine_facts  # noqa: E402

from esrank.corpus import Document, read_documents, sample_corpus_path  # noqa: E402
from esrank.evaluation.prmu import evaluate, significance_table  # noqa: E402
from esrank.evaluation.tables import result_grid, significance_grid  # noqa: E402
from esrank.ranking.pipeline import RankSettings, rank_documents  # noqa: E402
from esrank.ranking.ranker import Ranker  # noqa: E402
from esrank.ranking.training import TrainConfig, train  # noqa: E402
from esrank.retrieval.embedded import EmbeddedBackend  # noqa: E402


def folds(docs: list[Document], n: int) -> list[tuple[list[Document], list[Document]]]:
    """Stratified by domain: document i of each domain goes to fold i mod n."""
    seen: dict[str, int] = {}
    fold_of = []
    for d in docs:
        g = str(d.meta.get("domain", ""))
        seen[g] = seen.get(g, -1) + 1
        fold_of.append(seen[g] % n)
    return [([d for d, f in zip(docs, fold_of) if f != i], [d for d, f in zip(docs, fold_of) if f == i])
            for i in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="corpus (default: the bundled sample)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--losses", default="masked-mnr,mnr,multilabel-supcon")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("-k", type=int, default=5)
    args = ap.parse_args()
    docs = list(read_documents(args.data or sample_corpus_path()))
    losses = [x for x in args.losses.split(",") if x]
    systems: dict[str, dict[str, list[str]]] = {"neighbour-vote": {}, "zero-shot": {}}
    systems.update({f"fine-tuned ({loss})": {} for loss in losses})
    if "masked-mnr" in losses:
        systems["fine-tuned (masked-mnr), documents cut at 128 tokens"] = {}
    settings = RankSettings(k=args.k, top_n=10)
    zero_shot = Ranker.load(None, threads=args.threads)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for i, (train_docs, test_docs) in enumerate(folds(docs, args.folds)):
            backend = EmbeddedBackend(f"fold{i}", Path(tmp) / f"index{i}")
            backend.create(overwrite=True)
            backend.bulk_add(train_docs)
            for name, ranker in (("neighbour-vote", None), ("zero-shot", zero_shot)):
                for p in rank_documents(test_docs, backend, ranker, settings, desc=f"fold {i} {name}"):
                    systems[name][p.id] = p.phrases
            for loss in losses:
                cfg = TrainConfig(loss=loss, batch_size=args.batch_size, mini_batch_size=min(32, args.batch_size),
                                  epochs=args.epochs, lr=5e-5, max_seq_length=192, threads=args.threads, seed=13)
                res = train(train_docs, Path(tmp) / f"model{i}-{loss}", cfg, resume=False)
                ranker = Ranker.load(res.model_dir, threads=args.threads)
                for p in rank_documents(test_docs, backend, ranker, settings, desc=f"fold {i} {loss}"):
                    systems[f"fine-tuned ({loss})"][p.id] = p.phrases
                if loss == "masked-mnr":
                    short = Ranker.load(res.model_dir, threads=args.threads, max_seq_length=128)
                    for p in rank_documents(test_docs, backend, short, settings, desc=f"fold {i} 128 tokens"):
                        systems["fine-tuned (masked-mnr), documents cut at 128 tokens"][p.id] = p.phrases
                print(f"fold {i}: {loss}: {res.pairs} pairs, {res.steps} steps, final loss {res.final_loss}",
                      file=sys.stderr)
            backend.close()
    result = evaluate(docs, systems)
    sig = significance_table(result, "neighbour-vote")
    print(f"machine: {machine_facts()}")
    print(f"{args.folds}-fold cross-validation over {len(docs)} documents of {args.data or 'the sample corpus'}, "
          f"k={args.k}, "
          f"{args.epochs} epochs, batch {args.batch_size}; {time.perf_counter() - start:.0f}s")
    print(result_grid(result, significance=sig, markdown=True))
    print()
    print(significance_grid(sig, markdown=True))
    if len(losses) > 1 and "masked-mnr" in losses:
        print()
        print(significance_grid(significance_table(result, "fine-tuned (masked-mnr)"), markdown=True))


if __name__ == "__main__":
    main()
