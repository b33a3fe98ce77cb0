"""Gain of each query form (mappings/search/) on the bundled retrieval test collection, on a live server.

Loads the 90-document sample as training index and target, enriches it (``--method``), then runs
``esrank eval-retrieval --with-enrichment`` at each keyphrase boost and prints the tables (MAP, nDCG@10,
recall@100, and the p-value of a paired randomization test of each form against BM25 alone, per metric).

    python3 bench/bench_query_forms.py --url http://localhost:9200 --method model --boost 1 --boost 2
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from pathlib import Path

from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from esrank.commands import main  # noqa: E402
from esrank.corpus import sample_corpus_path  # noqa: E402
from esrank.retrieval.cluster import Cluster, ConnectionConfig  # noqa: E402

DATA = ROOT / "esrank" / "data" / "retrieval"


def run(*args: str) -> str:
    """One esrank command; its stdout (exit on failure)."""
    r = CliRunner().invoke(main, list(args))
    if r.exit_code != 0:
        raise SystemExit(r.output)
    return r.stdout


def main_() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default=os.environ.get("ESRANK_URL"))
    ap.add_argument("--method", default="model", choices=["model", "vote", "mix"])
    ap.add_argument("--boost", type=float, action="append", default=None)
    args = ap.parse_args()
    if not args.url:
        raise SystemExit("give --url (or ESRANK_URL)")
    index = f"bench-forms-{uuid.uuid4().hex[:8]}"
    cluster = Cluster.connect(ConnectionConfig(args.url))
    try:
        print(f"{cluster.kind} {cluster.version}; rank features: {cluster.has_module('mapper-extras')}; "
              f"english analyzer: {cluster.has_analyzer('english')}; enrichment method {args.method}")
        run("-q", "load", str(sample_corpus_path()), "--url", args.url, "--index", index)
        run("-q", "enrich", "--url", args.url, "--index", index, "--target-index", index, "--text-fields",
            "title,text", "--method", args.method, "--no-carbon", "--threads", "1", "--device", "cpu")
        for boost in args.boost or [1.0]:
            out = run("-q", "eval-retrieval", "--url", args.url, "--target-index", index, "--topics",
                      str(DATA / "topics.tsv"), "--qrels", str(DATA / "qrels.txt"), "--fields", "title,text",
                      "--with-enrichment", "--keyphrase-boost", str(boost), "--format", "json")
            result = json.loads(out)
            print(f"\nkeyphrase boost {boost:g}\n")
            metrics = ("map", "ndcg@10", "recall@100")
            print("| run | MAP | nDCG@10 | recall@100 | ΔMAP | p MAP | p nDCG@10 | p recall@100 |")
            print("|---|---:|---:|---:|---:|---:|---:|---:|")
            tests = {(t["b"], t["metric"]): t for t in result["tests"]}
            for name, r in result["runs"].items():
                t = tests.get((name, "map"))
                delta = f"{t['mean_b'] - t['mean_a']:+.4f}" if t else ""
                ps = [f"{tests[(name, m)]['p_randomization']:.4f}" if (name, m) in tests else "" for m in metrics]
                print(f"| {name} | {r['map']:.4f} | {r['ndcg@10']:.4f} | {r['recall@100']:.4f} | {delta} | "
                      + " | ".join(ps) + " |")
    finally:
        cluster.delete_index(index)
        cluster.close()


if __name__ == "__main__":
    main_()
