"""End-to-end `esrank rank` speed on a 20k-document embedded index (CPU), fp32 vs bf16, and the ratio to BART.

Index: 20,000 generated documents of ~180 English words (drawn Zipf-wise from the sample corpus's vocabulary) with 5
keyphrases each from a 30,000-phrase vocabulary (Zipf: keyphrases repeat across documents as in real corpora).
Queries: held-out documents of the same kind. Each precision gets a fresh ranker (empty keyphrase cache); a warm-up
batch is not timed; the timed pass reports docs/s, the time split and the cache hit rate. With --bart, BART-base
beam-5 generation (random weights, bart-base shape; see bench_bart.py) is timed on real-length documents in the
same run, so the ranker/BART ratio compares the two under the same machine load.

Run: python3 bench/bench_rank.py [--index-docs 20000] [--queries 256] [--threads 2] [--bart]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from common import machine_facts  # noqa: E402

from esrank.corpus import Document, read_documents, sample_corpus_path  # noqa: E402
from esrank.encoder import cpu_bf16_support  # noqa: E402
from esrank.pipeline import RankSettings, rank_documents  # noqa: E402
from esrank.reranker import Ranker  # noqa: E402
from esrank.retrieval.embedded import EmbeddedBackend  # noqa: E402
from esrank.text import is_word, tokenize  # noqa: E402


def english_corpus(n: int, *, words: int = 180, phrases: int = 30_000, seed: int = 0) -> list[Document]:
    """Documents of Zipf-drawn sample-corpus words with keyphrases from a Zipf-drawn phrase vocabulary."""
    rng = np.random.default_rng(seed)
    counts: dict[str, int] = {}
    for d in read_documents(sample_corpus_path()):
        for t in tokenize(d.full_text):
            if is_word(t):
                counts[t.lower()] = counts.get(t.lower(), 0) + 1
    lex = sorted(counts, key=counts.get, reverse=True)  # type: ignore[arg-type]
    pidx = rng.integers(0, len(lex), size=(phrases, 2))
    vocab = [f"{lex[a]} {lex[b]}" for a, b in pidx]
    w = np.minimum(rng.zipf(1.3, size=(n, words)), len(lex)) - 1
    k = np.minimum(rng.zipf(1.2, size=(n, 5)), phrases) - 1
    return [Document(f"g{i}", " ".join(lex[j] for j in w[i, :10]), " ".join(lex[j] for j in w[i, 10:]),
                     [vocab[j] for j in k[i]]) for i in range(n)]


def timed_pass(ranker: Ranker, backend: EmbeddedBackend, docs: list[Document], settings: RankSettings) -> float:
    t = time.perf_counter()
    for _ in rank_documents(docs, backend, ranker, settings, desc="ranking"):
        pass
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index-docs", type=int, default=20_000)
    ap.add_argument("--queries", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--bart", action="store_true", help="also time BART-base beam-5 generation (slow)")
    ap.add_argument("--bart-docs", type=int, default=4)
    args = ap.parse_args()
    docs = english_corpus(args.index_docs + args.queries * (args.repeats + 1))
    index_docs, queries = docs[:args.index_docs], docs[args.index_docs:]
    settings = RankSettings(k=5, top_n=10, batch_size=64)
    print(f"machine: {machine_facts()}; cpu bf16: {cpu_bf16_support()}")
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        backend = EmbeddedBackend("bench", Path(tmp) / "idx")
        backend.create(overwrite=True)
        t = time.perf_counter()
        backend.bulk_add(index_docs)
        print(f"index: {len(index_docs)} documents in {time.perf_counter() - t:.1f}s")
        rankers = {p: Ranker.load(None, device="cpu", precision=p, threads=args.threads)
                   for p in args.precisions.split(",")}
        for p, r in rankers.items():  # warm-up (model load, first batches), not timed
            timed_pass(r, backend, queries[:32], settings)
        # interleaved repeats: each repeat ranks a fresh set of queries with every precision
        for rep in range(args.repeats):
            batch = queries[args.queries * (rep + 1): args.queries * (rep + 2)]
            for p, r in rankers.items():
                results.setdefault(p, []).append(len(batch) / timed_pass(r, backend, batch, settings))
        for p, r in rankers.items():
            rates = results[p]
            print(f"{p}: docs/s best {max(rates):.1f}, median {statistics.median(rates):.1f} "
                  f"({args.repeats} passes of {args.queries} documents, {args.threads} threads)")
            print(f"  {r.stats.summary()}")
        if args.bart:
            from bench_bart import bart_docs_per_second, realistic_docs

            bdocs = realistic_docs(args.bart_docs)
            for p in rankers:
                timing = bart_docs_per_second(bdocs, p, repeats=2, target_tokens=22)
                best = max(results[p])
                print(f"BART-base beam-5 {p}: docs/s best {timing.best:.3f}, median {timing.median:.3f}; "
                      f"ranker/BART (best/best) = {best / timing.best:.0f}x")
        backend.close()


if __name__ == "__main__":
    main()
