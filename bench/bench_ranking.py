"""Ranking benchmark: end-to-end docs/s of retrieval → candidate pools → bi-encoder ranking, fp32 vs bf16.

    python3 bench/bench_ranking.py [--index-size 20000] [--queries 256] [--threads 2] [--repeat 3]
    python3 bench/bench_ranking.py --runtimes --doc-tokens 128,256 [--data ../shared/data/acm-dev]
        [--speed-docs 256] [--quality-docs 2000] [--repeat 3]

With --runtimes: the encoder runtimes (torch fp32, torch bf16, ONNX Runtime int8, OpenVINO fp32, OpenVINO int8
static-calibrated on 128 training documents) on acm-dev: document-encoding docs/s, `rank` docs/s end to end (embedded
index of the training documents, warm keyphrase cache) and quality against torch fp32 at the same length.

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


RUNTIME_ROWS = ("torch fp32", "torch bf16", "onnx int8", "openvino fp32", "openvino int8")


def runtime_encoders(base: Encoder, export_dir: Path, calibration: list[str], threads: int) -> dict[str, Encoder]:
    """One encoder per runtime row, all sharing the torch model (exports written to export_dir)."""
    from esrank.ranking.runtimes import ExportedModel, export, require

    fp = base.fingerprint.rsplit("-", 1)[0]
    out = {"torch fp32": base, "torch bf16": Encoder(base.model, "cpu", "bf16", base.batch_size)}
    for row in RUNTIME_ROWS[2:]:
        runtime, variant = row.split()
        require(runtime)
        t = time.perf_counter()
        entry = export(base.model, fp, export_dir, runtime, variant, calibration=calibration, threads=threads)
        print(f"exported {row} in {time.perf_counter() - t:.0f}s: {entry['quantization']}; check {entry['check']}",
              file=sys.stderr)
        # OpenVINO fp32 is run at f32 inference precision here (exact); `esrank rank --precision auto` lets it
        # use bf16 on CPUs with native bf16
        model = ExportedModel(base.model, export_dir / runtime, runtime, variant, threads=threads, precision="fp32")
        out[row] = Encoder(base.model, "cpu", "fp32", base.batch_size, exported=model)
    return out


def bench_runtimes(args: argparse.Namespace) -> None:
    """Encoder runtimes on acm-dev: document encoding docs/s × length, quality vs fp32, `rank` end to end."""
    from esrank.corpus import read_documents
    from esrank.evaluation.prmu import evaluate
    from esrank.ranking.pipeline import RankSettings, rank_documents
    from esrank.ranking.pools import RetrievedNeighbours

    data = Path(args.data)
    train = list(read_documents(data / "train.jsonl"))
    test = list(read_documents(data / "test.jsonl"))
    speed_docs = [d.full_text for d in test[:args.speed_docs]]
    quality_docs = test[:args.quality_docs]
    lengths = [int(x) for x in args.doc_tokens.split(",")]
    print(f"machine: {machine_facts()} (shared with other jobs); threads {args.threads}; "
          f"CPU bf16: {cpu_bf16_support()}")
    with tempfile.TemporaryDirectory() as tmp:
        base = Encoder.load(device="cpu", precision="fp32", threads=args.threads)
        encoders = runtime_encoders(base, Path(tmp) / "exports", [d.full_text for d in train[:128]], args.threads)
        rates: dict[tuple[str, int], list[float]] = {}
        for enc in encoders.values():  # warm-up
            enc.encode_documents(speed_docs[:8], 8)
        for _ in range(args.repeat):
            for tokens in lengths:
                base.model.max_seq_length = tokens
                for row, enc in encoders.items():
                    t = time.perf_counter()
                    enc.encode_documents(speed_docs, args.encode_batch)
                    rates.setdefault((row, tokens), []).append(len(speed_docs) / (time.perf_counter() - t))
        backend = EmbeddedBackend("acm-dev", Path(tmp) / "idx")
        backend.create(overwrite=True)
        backend.bulk_add(train)
        cached = RetrievedNeighbours(backend, args.k)
        cache = EmbeddingCache(base)  # keyphrases: torch fp32, shared by every runtime (as in `esrank rank`)
        settings = RankSettings(k=args.k, top_n=None, batch_size=args.encode_batch)
        systems: dict[str, dict[str, list[str]]] = {}
        for tokens in lengths:
            base.model.max_seq_length = tokens
            for row, enc in encoders.items():
                ranker = Ranker(enc, cache)
                name = f"{row} @{tokens}"
                systems[name] = {p.id: p.phrases for p in rank_documents(quality_docs, cached, ranker, settings,
                                                                         desc=name, stats=RankStats())}
        result = evaluate(quality_docs, systems)
        # `esrank rank` end to end (retrieval included, keyphrase cache warm) at each length
        # (torch fp32, torch bf16 and the fastest other runtime, on the first --e2e-docs test documents)
        e2e: dict[tuple[str, int], list[float]] = {}
        best = max(RUNTIME_ROWS[2:], key=lambda row: statistics.median(rates[(row, max(lengths))]))
        fresh = EmbeddedBackend("acm-dev", Path(tmp) / "idx")
        fresh.open()
        for _ in range(args.repeat):
            for tokens in lengths:
                base.model.max_seq_length = tokens
                for row in ("torch fp32", "torch bf16", best):
                    stats = RankStats()
                    t = time.perf_counter()
                    for _p in rank_documents(test[:args.e2e_docs], fresh, Ranker(encoders[row], cache), settings,
                                             stats=stats):
                        pass
                    e2e.setdefault((row, tokens), []).append(args.e2e_docs / (time.perf_counter() - t))
        fresh.close()
        backend.close()
    ref = rates[("torch fp32", max(lengths))]
    print(f"\nDocument encoding, {len(speed_docs)} acm-dev test documents, batch {args.encode_batch}, "
          f"{args.threads} threads, {args.repeat} interleaved rounds; quality on the first {len(quality_docs)} "
          f"test documents (k={args.k}, zero-shot MiniLM, keyphrases by torch fp32), difference to torch fp32 "
          f"at the same length, points ×100; `rank` end to end (embedded index of the {len(train)} training "
          f"documents, warm keyphrase cache) on {args.e2e_docs} test documents\n")
    print("| runtime | word pieces | encoding docs/s min | median | × torch fp32 @256 | `rank` docs/s median "
          "| present F1@Q | Δ | absent R@Q | Δ |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for tokens in lengths:
        f_ref = result.systems[f"torch fp32 @{tokens}"].mean("P_F1@Q")[0] * 100
        r_ref = result.systems[f"torch fp32 @{tokens}"].mean("Abs_R@Q")[0] * 100
        for row in encoders:
            r = rates[(row, tokens)]
            f1 = result.systems[f"{row} @{tokens}"].mean("P_F1@Q")[0] * 100
            ar = result.systems[f"{row} @{tokens}"].mean("Abs_R@Q")[0] * 100
            print(f"| {row} | {tokens} | {min(r):.1f} | {statistics.median(r):.1f} "
                  f"| {statistics.median(r) / statistics.median(ref):.2f} "
                  f"| {statistics.median(e2e[(row, tokens)]) if (row, tokens) in e2e else float('nan'):.1f} | {f1:.2f} | {f1 - f_ref:+.2f} | {ar:.2f} "
                  f"| {ar - r_ref:+.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runtimes", action="store_true",
                    help="encoder runtimes on acm-dev (torch fp32/bf16, ONNX int8, OpenVINO fp32/int8) instead")
    ap.add_argument("--data", default="../shared/data/acm-dev", help="--runtimes: train.jsonl and test.jsonl")
    ap.add_argument("--speed-docs", type=int, default=256, help="--runtimes: test documents timed")
    ap.add_argument("--quality-docs", type=int, default=2000, help="--runtimes: test documents evaluated")
    ap.add_argument("--encode-batch", type=int, default=32, help="--runtimes: documents per encoder call")
    ap.add_argument("--e2e-docs", type=int, default=128, help="--runtimes: test documents ranked end to end")
    ap.add_argument("-k", type=int, default=5, help="--runtimes: neighbours")
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
    if args.runtimes:
        torch.set_num_threads(args.threads)
        bench_runtimes(args)
        return
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
