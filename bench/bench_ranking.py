"""Ranking benchmark: end-to-end docs/s of retrieval → candidate pools → bi-encoder ranking, fp32 vs bf16.

    python3 bench/bench_ranking.py [--index-size 20000] [--queries 256] [--threads 2] [--repeat 3]

An embedded (bm25s) index of generated kp20k-like documents (bench/common.synthetic_corpus) is built in a
temporary directory; held-out generated documents are ranked with k=5 neighbours by all-MiniLM-L6-v2
(the packaged model), once per precision per round, rounds interleaved so that machine noise hits both.
Each round starts with an empty keyphrase cache. Prints the figures as Markdown, plus the bf16 : fp32
embedding agreement (smallest cosine over the ranked documents' texts).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from bench.common import machine_facts, synthetic_corpus  # noqa: E402
from esrank.ranking.candidates import pool_from_neighbours  # noqa: E402
from esrank.ranking.encoder import CacheStats, EmbeddingCache, Encoder, cpu_bf16_support  # noqa: E402
from esrank.ranking.ranker import Ranker, RankStats, embedding_agreement, vote_rank_pools  # noqa: E402
from esrank.retrieval.embedded import EmbeddedBackend  # noqa: E402


def run_once(backend: EmbeddedBackend, queries, encoder: Encoder, batch: int,
             ranker: Ranker | None = None) -> tuple[RankStats, Ranker]:
    """Rank all queries in batches (a fresh cache unless a ranker is given); stats include retrieval."""
    ranker = ranker or Ranker(encoder, EmbeddingCache(encoder))
    ranker.cache.stats = CacheStats()  # count this run's lookups only
    ranker.stats = RankStats(cache=ranker.cache.stats)
    for i in range(0, len(queries), batch):
        docs = queries[i:i + batch]
        t = time.perf_counter()
        nbs = backend.neighbours(docs, 5)
        pools = [pool_from_neighbours(d.id, n) for d, n in zip(docs, nbs)]
        ranker.stats.retrieval_s += time.perf_counter() - t
        ranker.rank_pools(docs, pools, top_n=10)
    return ranker.stats, ranker


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--index-size", type=int, default=20000)
    ap.add_argument("--queries", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64, help="documents per retrieval + ranking call")
    ap.add_argument("--doc-tokens", default="256",
                    help="comma list of document truncations in word pieces (`esrank rank --max-doc-tokens`)")
    ap.add_argument("--bart", action="store_true",
                    help="also time BART-base beam-5 generation (bench_bart.py) in the same run: ranker/BART ratio")
    ap.add_argument("--bart-docs", type=int, default=4)
    args = ap.parse_args()
    doc_tokens = [int(x) for x in args.doc_tokens.split(",")]
    torch.set_num_threads(args.threads)
    corpus = synthetic_corpus(args.index_size + args.queries, seed=1)
    train, queries = corpus[:args.index_size], corpus[args.index_size:]
    bf16, why = cpu_bf16_support()
    print(f"machine: {machine_facts()}; torch threads {args.threads}; CPU bf16: {bf16} ({why})")
    with tempfile.TemporaryDirectory() as tmp:
        backend = EmbeddedBackend("bench", Path(tmp) / "idx")
        backend.create(overwrite=True)
        t = time.perf_counter()
        backend.bulk_add(train)
        print(f"indexed {len(train)} documents in {time.perf_counter() - t:.1f}s")
        base = Encoder.load(device="cpu", precision="fp32", threads=args.threads)
        encoders = {"fp32": base}
        if bf16:
            encoders["bf16"] = Encoder(base.model, "cpu", "bf16", base.batch_size)
        run_once(backend, queries[:8], base, 8)  # warm-up (first-call allocations)
        results: dict[str, list[RankStats]] = {}
        for _ in range(args.repeat):
            for tokens in doc_tokens:
                base.model.max_seq_length = tokens  # the encoders share one model
                cut = "" if tokens == 256 else f", documents cut at {tokens} tokens"
                for prec, enc in encoders.items():
                    cold, ranker = run_once(backend, queries, enc, args.batch)
                    # again with the cache filled: as after `encode-keyphrases` pre-computed the vocabulary
                    hot, _ = run_once(backend, queries, enc, args.batch, ranker)
                    results.setdefault(f"{prec}{cut}, empty cache", []).append(cold)
                    results.setdefault(f"{prec}{cut}, keyphrases cached", []).append(hot)
        base.model.max_seq_length = 256
        vote = RankStats()
        t = time.perf_counter()
        for i in range(0, len(queries), args.batch):
            docs = queries[i:i + args.batch]
            pools = [pool_from_neighbours(d.id, n) for d, n in zip(docs, backend.neighbours(docs, 5))]
            vote_rank_pools(docs, pools, stats=vote)
        vote_s = time.perf_counter() - t
        backend.close()
    print(f"\n{len(queries)} query documents, k=5, batches of {args.batch}, {args.repeat} interleaved rounds\n")
    print("| precision, cache | docs/s min | docs/s median | retrieval | doc encoding | candidate encoding | scoring "
          "| candidates/doc | cache hit rate |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    medians = {}
    for prec, runs in results.items():
        rates = [s.documents / s.total_s for s in runs]
        med = sorted(runs, key=lambda s: s.total_s)[len(runs) // 2]
        medians[prec] = statistics.median(rates)
        t = med.total_s
        print(f"| {prec} | {min(rates):.1f} | {statistics.median(rates):.1f} | {100 * med.retrieval_s / t:.0f}% "
              f"| {100 * med.document_encoding_s / t:.0f}% | {100 * med.candidate_encoding_s / t:.0f}% "
              f"| {100 * med.scoring_s / t:.0f}% | {med.candidates / med.documents:.1f} "
              f"| {100 * med.cache.hit_rate:.1f}% |")
    print(f"| neighbour vote (no encoder) | {len(queries) / vote_s:.1f} | | | | | | | |")
    if bf16:
        for state in ("empty cache", "keyphrases cached"):
            print(f"\nbf16 : fp32 median docs/s ratio, {state} = "
                  f"{medians['bf16, ' + state] / medians['fp32, ' + state]:.2f}")
        texts = [d.full_text for d in queries[:64]] + [k for d in queries[:16] for k in d.keyphrases]
        print(f"bf16 vs fp32 embeddings: smallest cosine {embedding_agreement(base, texts, 'bf16'):.5f} "
              f"over {len(texts)} texts")
    if args.bart:
        from bench.bench_bart import bart_docs_per_second, realistic_docs

        bdocs = realistic_docs(args.bart_docs)
        for prec in encoders:
            timing = bart_docs_per_second(bdocs, prec, repeats=2, target_tokens=22)
            for state in ("empty cache", "keyphrases cached"):
                ranker = medians[f"{prec}, {state}"]
                print(f"BART-base beam-5 {prec}: {timing.median:.3f} docs/s (median); ranker ({state}) / BART = "
                      f"{ranker / timing.median:.0f}x")


if __name__ == "__main__":
    main()
