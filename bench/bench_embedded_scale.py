"""Embedded index at scale: bulk indexing docs/s and whole-document neighbour queries/s at growing sizes.

    python3 bench/bench_embedded_scale.py --data ../shared/data/acm-dev --sizes 10000,100000 [--queries 500]

Collections larger than ``train.jsonl`` are synthesized by sampling its documents (seeded) under new ids; the
queries are the first ``--queries`` documents of ``test.jsonl`` (whole-document queries, k = 10, batches of
64 as ``esrank neighbours`` sends them). Indexing is ``bulk_add`` into a fresh index: the log write, the
vectorised analysis, the matrix build and the save to disk. Query rounds are repeated; min and median are
printed. Compare the figures as ratios within one run: the machine may be shared (the load average is printed).

Before the timed sizes, a small index is built and queried once: that first use compiles the numba kernels (or
loads them from numba's cache) and is printed apart, as it happens once per process, not per index.
"""
from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from esrank.corpus import Document, read_documents  # noqa: E402
from esrank.retrieval.embedded import EmbeddedBackend  # noqa: E402


def collection(train: list[Document], n: int, seed: int = 0) -> list[Document]:
    """``n`` documents: the training documents themselves, or a seeded sample of them under new ids."""
    if n <= len(train):
        return train[:n]
    rng = random.Random(seed)
    return [Document(f"synth-{i}", d.title, d.text, d.keyphrases) for i, d in
            enumerate(rng.choice(train) for _ in range(n))]


def main() -> None:
    """Index each size, query it, print a Markdown table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data/acm-dev")
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("-k", type=int, default=10)
    args = ap.parse_args()
    data = Path(args.data)
    train = list(read_documents(data / "train.jsonl"))
    queries = list(read_documents(data / "test.jsonl"))[:args.queries]
    print(f"load average at start: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        warm = EmbeddedBackend("warm-up", Path(tmp) / "idx")
        warm.bulk_add(train[:300])
        warm.neighbours(queries[:64], args.k)
        print(f"first use in this process (kernels compiled or loaded, 300-document index): "
              f"{time.perf_counter() - t:.2f} s")
    print("| documents | index s | index docs/s | queries/s min | queries/s median | ms/query (median) | peak RSS GB |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n in (int(x) for x in args.sizes.split(",")):
        docs = collection(train, n)
        with tempfile.TemporaryDirectory() as tmp:
            backend = EmbeddedBackend("scale", Path(tmp) / "idx")
            backend.create()
            t = time.perf_counter()
            backend.bulk_add(docs, batch_size=5000)
            index_s = time.perf_counter() - t
            del docs
            rates = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                for s in range(0, len(queries), 64):
                    backend.neighbours(queries[s:s + 64], args.k)
                rates.append(len(queries) / (time.perf_counter() - t))
            med = statistics.median(rates)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # KiB → GiB; the process' peak so far
            print(f"| {n:,} | {index_s:.1f} | {n / index_s:,.0f} | {min(rates):,.0f} | {med:,.0f} | "
                  f"{1000 / med:.2f} | {peak:.1f} |", flush=True)
            backend.close()
    print(f"load average at end: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
