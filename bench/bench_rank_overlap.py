"""Ranking speed of the pipeline's two latency features on acm-dev with a 20k embedded index, k = 50, mix model:
retrieval overlapped with encoding (warm process, overlap on/off interleaved) and the cold start of a fresh
process reading keyphrase embeddings from the SQLite cache or from the memory-mapped matrix.

    python3 bench/bench_rank_overlap.py --data ../shared/data/acm-dev [--docs 512] [--cold-docs 256] [--repeat 3]

Setup as bench_rank_e2e.py (``build_setup``: the training documents indexed, the mix model fitted, the OpenVINO int8
export), then `esrank encode-keyphrases` (the real command) fills a cache directory: SQLite and the matrix.

* overlap: one warm ranker per setting (`--runtime openvino`: the int8 export; keyphrases from the matrix) ranks
  the first ``--docs`` test documents through ``rank_documents`` with ``RankSettings.overlap`` on and off, rounds
  interleaved; the neighbour vote (retrieval-bound) alongside.
* cold start: ``--repeat`` rounds of two fresh processes each (``--child``, the library calls `esrank rank
  --disk-cache` makes), one with a cache directory holding only the SQLite file, one with the SQLite file and the
  matrix, interleaved: time from spawning the process to its first prediction, to its last, and docs/s. The
  files are in the OS page cache after the first round (cold process, warm disk).
Compare as ratios inside one run: the machine may be shared.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def child(args: argparse.Namespace) -> None:
    """A fresh process: load as `esrank rank --disk-cache` does, rank, print the timestamps as JSON."""
    from esrank.commands.common import settled_heap
    from esrank.corpus import read_documents
    from esrank.ranking.mix import resolve_mix
    from esrank.ranking.pipeline import RankSettings, rank_documents
    from esrank.ranking.ranker import Ranker
    from esrank.retrieval.embedded import EmbeddedBackend

    settings = RankSettings(k=args.k, method="mix", overlap=not args.no_overlap)
    settings.mix_weight, settings.mix_model, _ = resolve_mix("mix", None, args.k, args.model)
    imported = time.time()
    ranker = Ranker.load(args.model, threads=args.threads, disk_cache=args.cache, runtime="openvino")
    backend = EmbeddedBackend("e2e", args.index)
    backend.open()
    loaded = time.time()
    first = None
    n = 0
    with settled_heap():
        for _ in rank_documents(read_documents(args.child), backend, ranker, settings):
            n += 1
            if first is None:
                first = time.time()
    end = time.time()
    s = ranker.stats
    print(json.dumps({"imported": imported, "loaded": loaded, "first": first, "end": end, "documents": n, "runtime": ranker.encoder.runtime,
                      "matrix": ranker.cache.matrix is not None, "cache": s.cache.to_json(),
                      "candidate_encoding_s": s.candidate_encoding_s}))
    backend.close()
    ranker.close()


def cold_round(args: argparse.Namespace, docs: Path, index: Path, model: Path, cache: Path) -> dict[str, float]:
    """One fresh process; times from its spawn."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    t0 = time.time()
    out = subprocess.run([sys.executable, __file__, "--child", str(docs), "--index", str(index), "--model", str(model),
                          "--cache", str(cache), "-k", str(args.k), "--threads", str(args.threads)],
                         check=True, capture_output=True, text=True, env=env)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return {"imported": r["imported"] - t0, "loaded": r["loaded"] - t0, "first": r["first"] - t0,
            "end": r["end"] - t0, "docs_s": r["documents"] / (r["end"] - t0),
            "ranking_docs_s": r["documents"] / (r["end"] - r["loaded"]),
            "candidate_encoding_s": r["candidate_encoding_s"], "matrix": r["matrix"], "runtime": r["runtime"],
            "hit_rate": r["cache"]["hit_rate"], "encoded": r["cache"]["encoded"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data/acm-dev")
    ap.add_argument("--index-docs", type=int, default=20_000)
    ap.add_argument("--docs", type=int, default=512, help="test documents per overlap round")
    ap.add_argument("--cold-docs", type=int, default=256, help="test documents each fresh process ranks")
    ap.add_argument("-k", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--index", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--model", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--cache", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--no-overlap", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.child:
        child(args)
        return

    from bench.bench_rank_e2e import build_setup
    from bench.common import machine_line
    from esrank.commands import main as cli
    from esrank.commands.common import settled_heap
    from esrank.corpus import write_documents
    from esrank.ranking.pipeline import RankSettings, rank_documents
    from esrank.ranking.ranker import Ranker, RankStats

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        setup = build_setup(root, Path(args.data), index_docs=args.index_docs, test_docs=max(args.docs, args.cold_docs),
                            k=args.k, threads=args.threads)
        index = root / "index"
        cache = root / "cache"
        t = time.perf_counter()
        cli(["--quiet", "encode-keyphrases", "--index", "e2e", "--path", str(index), "--model", str(setup.model),
             "--cache-dir", str(cache), "--threads", str(args.threads)], standalone_mode=False)
        setup.times["encode-keyphrases (SQLite + matrix)"] = time.perf_counter() - t
        sqlite_only = root / "cache-sqlite"
        sqlite_only.mkdir()
        for f in cache.glob("*.sqlite"):
            shutil.copy(f, sqlite_only / f.name)
        matrix_bytes = sum(f.stat().st_size for f in cache.glob("*.npy"))
        phrases = len(setup.phrases)

        # -- overlap, warm process ----------------------------------------------------------------------------
        test = setup.test[:args.docs]
        rankers = {on: Ranker.load(setup.model, threads=args.threads, disk_cache=cache, runtime="openvino")
                   for on in (True, False)}
        runtime = rankers[True].encoder.runtime
        labels = {(r, on): f"{r}, overlap {'on' if on else 'off'}" for r in (runtime, "neighbour vote")
                  for on in (True, False)}
        rates: dict[str, list[float]] = {label: [] for label in labels.values()}
        last: dict[str, RankStats] = {}
        with settled_heap():
            for _ in range(args.repeat):
                for (r, on), label in labels.items():
                    ranker = rankers[on] if r == runtime else None
                    stats = RankStats() if ranker is None else RankStats(cache=ranker.cache.stats)
                    if ranker is not None:
                        ranker.stats = stats
                        settings = RankSettings(k=args.k, method="mix", mix_weight=setup.settings.mix_weight,
                                                mix_model=setup.settings.mix_model, overlap=on)
                    else:
                        settings = RankSettings(k=args.k, method="vote", overlap=on)
                    t = time.perf_counter()
                    n = sum(1 for _ in rank_documents(test, setup.backend, ranker, settings, stats=stats, desc=label))
                    rates[label].append(n / (time.perf_counter() - t))
                    last[label] = stats
        for rk in rankers.values():
            rk.close()
        setup.backend.close()

        # -- cold start, fresh processes ----------------------------------------------------------------------
        cold_docs = root / "cold.jsonl"
        write_documents(setup.test[:args.cold_docs], cold_docs)
        cold: dict[str, list[dict[str, float]]] = {"SQLite cache": [], "memory-mapped matrix": []}
        for _ in range(args.repeat):
            cold["SQLite cache"].append(cold_round(args, cold_docs, index, setup.model, sqlite_only))
            cold["memory-mapped matrix"].append(cold_round(args, cold_docs, index, setup.model, cache))

    print(machine_line())
    print(f"{len(setup.train)} indexed, k = {args.k}, {args.threads} threads, batches of "
          f"{setup.settings.batch_size}, {phrases} distinct indexed keyphrases (matrix {matrix_bytes / 1e6:.1f} MB); setup: "
          + ", ".join(f"{name} {secs:.0f} s" for name, secs in setup.times.items()))
    print()
    print(f"Overlap: {len(test)} test documents per round, {args.repeat} rounds interleaved, warm process.")
    print()
    print("| ranking | docs/s min | docs/s median | × overlap off (median) | retrieval waited | retrieval overlapped |")
    print("|---|---:|---:|---:|---:|---:|")
    for (r, on), label in labels.items():
        off = statistics.median(rates[labels[(r, False)]])
        s = last[label]
        print(f"| {label} | {min(rates[label]):.1f} | {statistics.median(rates[label]):.1f} | "
              f"{statistics.median(rates[label]) / off:.2f} | {s.retrieval_s:.2f} s | {s.retrieval_overlapped_s:.2f} s |")
    print()
    print(f"Cold start: a fresh process ranks the first {args.cold_docs} test documents ({runtime}), {args.repeat} "
          "rounds interleaved; times from spawning the process.")
    print()
    print("| keyphrase embeddings from | imports s | + model and index loaded s | first result s (min / median) | "
          "all done s (min / median) | docs/s incl. start (median) | docs/s once loaded (min / median) | "
          "keyphrase lookups s (median) | encoded |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, rounds in cold.items():
        med = {key: statistics.median(r[key] for r in rounds) for key in
               ("imported", "loaded", "first", "end", "docs_s", "ranking_docs_s", "candidate_encoding_s")}
        print(f"| {label} | {med['imported']:.2f} | {med['loaded']:.2f} | {min(r['first'] for r in rounds):.2f} / "
              f"{med['first']:.2f} | {min(r['end'] for r in rounds):.2f} / {med['end']:.2f} | {med['docs_s']:.1f} | "
              f"{min(r['ranking_docs_s'] for r in rounds):.1f} / {med['ranking_docs_s']:.1f} | "
              f"{med['candidate_encoding_s']:.2f} | {max(int(r['encoded']) for r in rounds)} |")
    assert all(r["matrix"] for r in cold["memory-mapped matrix"]) and not any(r["matrix"] for r in cold["SQLite cache"])


if __name__ == "__main__":
    main()
