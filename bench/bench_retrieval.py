"""Retrieval benchmark: bulk indexing docs/s and neighbour queries/s per backend on a generated corpus.

    python3 bench/bench_retrieval.py --sizes 10000,100000 --queries 1000 \
        [--es-url URL] [--os-url URL] [--start-servers] [--repeat 3]

The corpus is generated (seeded): documents of ~180 words drawn from 200 topics over a Zipfian
vocabulary, 5 keyphrases each. Queries are whole corpus documents (k=5, the query document excluded).
The embedded backend runs single-threaded; servers get batched ``_msearch`` requests (64 queries each).
Figures are printed as a Markdown table; compare them as ratios within one run.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from esrank.corpus import Document  # noqa: E402
from esrank.ranking.pools import neighbour_batches  # noqa: E402
from esrank.retrieval.factory import BackendOptions, open_backend  # noqa: E402

SYLLABLES = [c + v for c in "bcdfghklmnprstvz" for v in "aeiou"] + ["an", "el", "or", "is", "um"]


def vocabulary(size: int, rng: np.random.Generator) -> list[str]:
    """Distinct pseudo-words of 2-4 syllables."""
    words: dict[str, None] = {}
    while len(words) < size:
        n = int(rng.integers(2, 5))
        words["".join(SYLLABLES[i] for i in rng.integers(0, len(SYLLABLES), n))] = None
    return list(words)


def generate(n_docs: int, *, words: int = 180, seed: int = 13, vocab_size: int = 40000,
             topics: int = 200) -> list[Document]:
    """Seeded documents: half topic words, half general Zipfian words; keyphrases from the topic."""
    rng = np.random.default_rng(seed)
    vocab = np.array(vocabulary(vocab_size, rng), dtype=object)
    zipf = 1.0 / np.arange(1, vocab_size + 1) ** 1.05
    zipf /= zipf.sum()
    topic_words = np.stack([rng.choice(vocab_size, 300, replace=False) for _ in range(topics)])
    topic_phrases = [[" ".join(vocab[rng.choice(tw, int(rng.integers(1, 4)))]) for _ in range(25)]
                     for tw in topic_words]
    docs: list[Document] = []
    for start in range(0, n_docs, 10000):
        m = min(10000, n_docs - start)
        t = rng.integers(0, topics, m)
        own = topic_words[t[:, None], rng.integers(0, 300, (m, words // 2))]
        general = rng.choice(vocab_size, (m, words - words // 2), p=zipf)
        idx = rng.permuted(np.concatenate([own, general], axis=1), axis=1)
        picks = np.argsort(rng.random((m, 25)), axis=1)[:, :5]
        for j in range(m):
            toks = vocab[idx[j]]
            docs.append(Document(f"g{start + j:07d}", " ".join(toks[:10]), " ".join(toks[10:]),
                                 [topic_phrases[t[j]][p] for p in picks[j]]))
    return docs


def bench_backend(kind: str, options: BackendOptions, n_docs: int, queries: int, repeat: int,
                  batch_size: int) -> dict[str, float]:
    """Index n_docs, then time neighbour queries; returns the figures."""
    docs = generate(n_docs)
    backend = open_backend(options, create=True, overwrite=True)
    t0 = time.perf_counter()
    result = backend.bulk_add(docs, batch_size=batch_size)
    index_s = time.perf_counter() - t0
    assert result.indexed == n_docs and backend.count() == n_docs, (result, backend.count())
    qdocs = docs[:: max(1, n_docs // queries)][:queries]
    del docs
    rates = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = sum(1 for _ in neighbour_batches(backend, qdocs, k=5, batch_size=64))
        rates.append(n / (time.perf_counter() - t0))
    backend.close()
    return {"index_docs_s": n_docs / index_s, "index_s": index_s, "q_min": min(rates),
            "q_median": statistics.median(rates), "q_max": max(rates)}


def bench_bm25s_reference(n_docs: int, queries: int, repeat: int) -> dict[str, float]:
    """bm25s' own pipeline (Tokenizer + BM25.index + retrieve) on the same corpus, for the ratio."""
    import bm25s
    import Stemmer

    docs = generate(n_docs)
    texts = [f"{d.title} {d.text}" for d in docs]
    t0 = time.perf_counter()
    tok = bm25s.tokenization.Tokenizer(stopwords="en", stemmer=Stemmer.Stemmer("porter").stemWord)
    ids = tok.tokenize(texts, update_vocab=True, return_as="tuple", show_progress=False)
    retriever = bm25s.BM25(k1=1.5, b=0.75)
    retriever.index(ids, show_progress=False)
    index_s = time.perf_counter() - t0
    q = tok.tokenize(texts[:: max(1, n_docs // queries)][:queries], update_vocab=False, return_as="ids",
                     show_progress=False)
    rates = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        retriever.retrieve(q, k=6, show_progress=False, n_threads=0)
        rates.append(len(q) / (time.perf_counter() - t0))
    return {"index_docs_s": n_docs / index_s, "index_s": index_s, "q_min": min(rates),
            "q_median": statistics.median(rates), "q_max": max(rates)}


def main() -> None:
    """Run the benchmark and print a Markdown table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000", help="Corpus sizes, comma separated.")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=1000, help="Bulk chunk size.")
    ap.add_argument("--backends", default="embedded,elasticsearch,opensearch",
                    help="Any of embedded, elasticsearch, opensearch, bm25s (bm25s' own pipeline, for reference).")
    ap.add_argument("--es-url", default=os.environ.get("ESRANK_TEST_ES_URL"))
    ap.add_argument("--os-url", default=os.environ.get("ESRANK_TEST_OS_URL"))
    ap.add_argument("--start-servers", action="store_true", help="Start servers as the test suite does.")
    ap.add_argument("--heap", default="1g", help="Server heap with --start-servers.")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    kinds = args.backends.split(",")
    started = []
    urls = {"elasticsearch": args.es_url, "opensearch": args.os_url}
    if args.start_servers:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from servers import ELASTICSEARCH, OPENSEARCH, Server

        for kind, dist in (("elasticsearch", ELASTICSEARCH), ("opensearch", OPENSEARCH)):
            if kind in kinds and not urls[kind]:
                s = Server(dist, heap=args.heap).start()
                started.append(s)
                urls[kind] = s.url
    try:
        cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    except OSError:
        cpu = platform.processor()
    print(f"# retrieval benchmark {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} cores, "
          f"{cpu}; python {platform.python_version()}; queries={args.queries} k=5 repeat={args.repeat}")
    print("| backend | docs | index docs/s | index s | queries/s min | median | max |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    tmp = tempfile.mkdtemp(prefix="esrank-bench-")
    try:
        for n in sizes:
            for kind in kinds:
                if kind == "bm25s":
                    r = bench_bm25s_reference(n, args.queries, args.repeat)
                    print(f"| bm25s (reference) | {n} | {r['index_docs_s']:.0f} | {r['index_s']:.1f} | "
                          f"{r['q_min']:.0f} | {r['q_median']:.0f} | {r['q_max']:.0f} |", flush=True)
                    continue
                if kind == "embedded":
                    opts = BackendOptions(f"bench-{n}", backend="embedded", path=Path(tmp) / f"b{n}")
                elif urls.get(kind):
                    opts = BackendOptions.server(f"bench-{n}", urls[kind], backend=kind, timeout=300)
                else:
                    print(f"| {kind} | {n} | (no server: give --{kind[:2]}-url or --start-servers) | | | | |")
                    continue
                r = bench_backend(kind, opts, n, args.queries, args.repeat, args.batch_size)
                print(f"| {kind} | {n} | {r['index_docs_s']:.0f} | {r['index_s']:.1f} | {r['q_min']:.0f} | "
                      f"{r['q_median']:.0f} | {r['q_max']:.0f} |", flush=True)
    finally:
        for s in started:
            s.cleanup()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
