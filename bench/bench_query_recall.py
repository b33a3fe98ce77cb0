"""Neighbour-pool recall of gold keyphrases: the whole-document query against the old "first N distinct words".

    python3 bench/bench_query_recall.py --data ../shared/data/acm-dev [--max-query-terms 512] [--limit N] \
        [--budgets none,1000000]

Builds an embedded index of ``train.jsonl`` (in a temporary directory), queries it with every document of
``test.jsonl`` — the query of esrank up to 0.4 (the first 200 distinct words of title and text, each once) and
the current query (every analysed term with its frequency, at most ``--max-query-terms`` distinct terms of
highest tf·idf), the latter under each postings budget of ``--budgets`` (``none``: exhaustive; by default none
and the embedded index's default budget) — and prints the macro-averaged recall of the gold keyphrases (stemmed
match) in the pool of the k nearest neighbours' keyphrases, for present and absent gold keyphrases (PRMU: P vs
R/M/U), at k = 5, 10, 20, 50. Documents without gold keyphrases of a class do not count for that class.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bm25s.stopwords import STOPWORDS_EN  # noqa: E402

from esrank.corpus import Document, read_documents  # noqa: E402
from esrank.retrieval.bm25_index import WORD_RE  # noqa: E402
from esrank.retrieval.embedded import EmbeddedBackend  # noqa: E402
from esrank.retrieval.query import DEFAULT_POSTINGS_BUDGET  # noqa: E402
from esrank.text import classify_key, prepare, stemmed_key  # noqa: E402

KS = (5, 10, 20, 50)
STOP = frozenset(STOPWORDS_EN)


def old_query_text(doc: Document, max_terms: int = 200) -> str:
    """The query of esrank ≤ 0.4: distinct lowercased words of title then text, stop words dropped, the first 200."""
    seen: dict[str, None] = {}
    for part in (doc.title, doc.text):
        for word in WORD_RE.findall(part.lower()):
            if word not in STOP and word not in seen:
                seen[word] = None
                if len(seen) >= max_terms:
                    return " ".join(seen)
    return " ".join(seen)


def pool_recall(backend: EmbeddedBackend, test: list[Document], queries: list[tuple[np.ndarray, np.ndarray]]
                ) -> dict[tuple[str, int], float]:
    """Macro recall (percent) of present / absent gold keyphrases in the k-neighbour pools."""
    found = backend._scorer().top_k(queries, [max(KS) + 1] * len(queries))
    rows = backend._rows
    sums = {(c, k): 0.0 for c in ("present", "absent") for k in KS}
    counts = {c: 0 for c in ("present", "absent")}
    for doc, (idx, _scores) in zip(test, found):
        prepared = prepare(doc.title, doc.text)
        gold = {stemmed_key(p) for p in doc.keyphrases} - {""}
        classes = {"present": {g for g in gold if classify_key(g, prepared) == "P"}}
        classes["absent"] = gold - classes["present"]
        neighbours = [rows[int(j)] for j in idx if rows[int(j)][0] != doc.id][:max(KS)]
        for c, keys in classes.items():
            if not keys:
                continue
            counts[c] += 1
            for k in KS:
                pool = {stemmed_key(p) for _, kps in neighbours[:k] for p in kps}
                sums[(c, k)] += len(keys & pool) / len(keys)
    return {key: 100.0 * v / max(counts[key[0]], 1) for key, v in sums.items()}


def main() -> None:
    """Build the index, run both queries, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data/acm-dev", help="directory with train.jsonl and test.jsonl")
    ap.add_argument("--max-query-terms", type=int, default=None, help="bound on distinct query terms")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N test documents")
    ap.add_argument("--budgets", default=f"none,{DEFAULT_POSTINGS_BUDGET}",
                    help="postings budgets for the current query ('none': exhaustive)")
    args = ap.parse_args()
    data = Path(args.data)
    train = list(read_documents(data / "train.jsonl"))
    test = list(read_documents(data / "test.jsonl"))[:args.limit]
    with tempfile.TemporaryDirectory() as tmp:
        kw = {"max_query_terms": args.max_query_terms} if args.max_query_terms else {}
        backend = EmbeddedBackend("recall", Path(tmp) / "idx", **kw)  # type: ignore[arg-type]
        backend.create()
        t = time.perf_counter()
        backend.bulk_add(train)
        print(f"indexed {len(train)} documents in {time.perf_counter() - t:.1f}s; {len(test)} queries; "
              f"max query terms {backend.max_query_terms}")
        analyzer = backend._analyzer
        assert analyzer is not None
        current = [backend.query(d) for d in test]
        runs = {"first 200 distinct words (before)": (None, [analyzer.query_term_counts(old_query_text(d))
                                                             for d in test])}
        for b in args.budgets.split(","):
            budget = None if b.strip().lower() == "none" else int(float(b.replace("_", "")))
            runs[f"analysed terms with frequencies (after), postings budget {budget or 'none'}"] = (budget, current)
        print("\n| query | " + " | ".join(f"present R@{k}" for k in KS) + " | "
              + " | ".join(f"absent R@{k}" for k in KS) + " | postings/query (mean) | queries cut |")
        print("|---|" + "---:|" * (2 * len(KS) + 2))
        for name, (budget, queries) in runs.items():
            backend.postings_budget = budget
            r = pool_recall(backend, test, queries)
            scored = backend._scorer().last_scored
            cut = sum(int(s) < int(backend._scorer().lengths[q[0]].sum()) for s, q in zip(scored, queries))
            print(f"| {name} | " + " | ".join(f"{r[('present', k)]:.1f}" for k in KS) + " | "
                  + " | ".join(f"{r[('absent', k)]:.1f}" for k in KS) + f" | {scored.mean():,.0f} | {cut} |")
        backend.close()


if __name__ == "__main__":
    main()
