"""Embedded index at scale: bulk indexing docs/s and whole-document neighbour queries/s at growing sizes, for
several postings budgets, with the budgeted results' agreement with the exact ones.

    python3 bench/bench_embedded_scale.py --data ../shared/data/acm-dev --sizes 10000,100000 [--queries 500] \
        [--budgets none,250000,1000000] [-k 50]

Collections larger than ``train.jsonl`` are synthesized from its documents (seeded), each new document a variant:
a sampled document's title, the first part of its words (half to all of them) and the rest from the same
point of another sampled document's words, under a new id — so that, unlike plain copies, documents do not tie
by the thousand at 1M and the agreement of budgeted and exact results is measured on distinct documents. The
queries are the first ``--queries`` documents of ``test.jsonl`` (whole-document queries, k = ``-k``, batches of
64 as ``esrank neighbours`` sends them). Indexing is ``bulk_add`` into a fresh index: the log write, the
vectorised analysis, the matrix build (with the impact order), and the save to disk. Each size is queried under
every budget of ``--budgets`` (``none``: exhaustive), the budgets interleaved within each of the ``--repeat``
rounds (after one untimed batch under each budget: the first cut query makes the document-major matrix and the
samples of the impact order, once per index); min and median q/s are printed, the mean postings a query scored,
and against the exhaustive results (computed once per size, not timed): the mean overlap of the top-``k``
document sets (overlap@k) and how often the best document is the same (top-1). Compare the figures as ratios
within one run: the machine may be shared (the load average is printed).

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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from esrank.corpus import Document, read_documents  # noqa: E402
from esrank.retrieval.embedded import EmbeddedBackend  # noqa: E402


def collection(train: list[Document], n: int, seed: int = 0) -> list[Document]:
    """``n`` documents: the training documents themselves, or seeded variants of them under new ids."""
    if n <= len(train):
        return train[:n]
    rng = random.Random(seed)
    words = [d.text.split() for d in train]
    out = []
    for i in range(n):
        a, b = rng.randrange(len(train)), rng.randrange(len(train))
        wa, wb = words[a], words[b]
        cut = rng.randint(len(wa) // 2, len(wa))
        text = " ".join(wa[:cut] + wb[len(wb) * cut // max(len(wa), 1):])
        out.append(Document(f"synth-{i}", train[a].title, text, train[a].keyphrases))
    return out


def budget_value(text: str) -> int | None:
    """A ``--budgets`` item: ``none`` (exhaustive) or a number of postings (``1e6`` and ``1_000_000`` work)."""
    return None if text.strip().lower() == "none" else int(float(text.replace("_", "")))


def agreement(got: list[list[str]], exact: list[list[str]], k: int) -> tuple[float, float]:
    """Mean overlap@k of the id lists with the exact ones, and the share with the same first id."""
    overlap = [len(set(g[:k]) & set(e[:k])) / max(min(k, len(e)), 1) for g, e in zip(got, exact) if e]
    top1 = [bool(g) and g[0] == e[0] for g, e in zip(got, exact) if e]
    return float(np.mean(overlap)), float(np.mean(top1))


def main() -> None:
    """Index each size, query it under each budget, print a Markdown table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data/acm-dev")
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--budgets", default="none", help="comma-separated postings budgets ('none': exhaustive)")
    ap.add_argument("-k", type=int, default=50)
    args = ap.parse_args()
    data = Path(args.data)
    budgets = [budget_value(b) for b in args.budgets.split(",")]
    train = list(read_documents(data / "train.jsonl"))
    queries = list(read_documents(data / "test.jsonl"))[:args.queries]
    print(f"load average at start: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}; k = {args.k}; "
          f"{len(queries)} queries")
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        warm = EmbeddedBackend("warm-up", Path(tmp) / "idx")
        warm.bulk_add(train[:300])
        warm.neighbours(queries[:64], args.k)
        print(f"first use in this process (kernels compiled or loaded, 300-document index): "
              f"{time.perf_counter() - t:.2f} s")
    print("| documents | budget | index s | index docs/s | queries/s min | queries/s median | ms/query (median) | "
          "postings/query | overlap@k | top-1 | peak RSS GB |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in (int(x) for x in args.sizes.split(",")):
        docs = collection(train, n)
        with tempfile.TemporaryDirectory() as tmp:
            backend = EmbeddedBackend("scale", Path(tmp) / "idx", postings_budget=None)
            backend.create()
            t = time.perf_counter()
            backend.bulk_add(docs, batch_size=5000)
            index_s = time.perf_counter() - t
            del docs
            scorer = backend._scorer()
            exact = [[x.id for x in ns] for ns in backend.neighbours(queries, args.k)]
            results: dict[int | None, list[list[str]]] = {}
            postings: dict[int | None, float] = {}
            rates: dict[int | None, list[float]] = {b: [] for b in budgets}
            t = time.perf_counter()
            for b in budgets:  # untimed: what the first cut query makes once (document-major matrix, samples)
                backend.postings_budget = b
                backend.neighbours(queries[:64], args.k)
            print(f"{n:,} documents: first queries under each budget (one-time structures) "
                  f"{time.perf_counter() - t:.1f} s", flush=True)
            for _ in range(args.repeat):
                for b in budgets:  # interleaved: each round times every budget
                    backend.postings_budget = b
                    found: list[list[str]] = []
                    scored = []
                    t = time.perf_counter()
                    for s in range(0, len(queries), 64):
                        found += [[x.id for x in ns] for ns in backend.neighbours(queries[s:s + 64], args.k)]
                        scored.append(scorer.last_scored)
                    rates[b].append(len(queries) / (time.perf_counter() - t))
                    results[b] = found
                    postings[b] = float(np.concatenate(scored).mean())
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # KiB → GiB; the process' peak so far
            for b in budgets:
                med = statistics.median(rates[b])
                overlap, top1 = agreement(results[b], exact, args.k)
                print(f"| {n:,} | {'none' if b is None else f'{b:,}'} | {index_s:.1f} | {n / index_s:,.0f} | "
                      f"{min(rates[b]):,.0f} | {med:,.0f} | {1000 / med:.2f} | {postings[b]:,.0f} | {overlap:.3f} | "
                      f"{top1:.3f} | {peak:.1f} |", flush=True)
            backend.close()
    print(f"load average at end: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
