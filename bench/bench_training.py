"""Fine-tuning speed and precision: the pair path against the document-grouped path, fp32 against bf16.

    python3 bench/bench_training.py speed --data ../shared/data/acm-dev/train.jsonl --docs 500 --pair-docs 100 \
        --repeats 2 [--batch-size 250] [--threads 2]
    python3 bench/bench_training.py curve --data ../shared/data/acm-dev/train.jsonl --docs 320 --batch-size 32
    python3 bench/bench_training.py epoch --data ../shared/data/acm-dev/train.jsonl --docs 1000

Every run is `esrank.ranking.training.train` in a fresh subprocess (so its peak RSS is its own) on the first
documents of the file, with all-MiniLM-L6-v2 (packaged), max_seq_length 256, mini-batch 32, masked MNR, one
epoch; the time is that of the training loop (model loading and tokenisation excluded, as in the model
card's documents/s and pairs/s). On a shared machine the process CPU time of the whole ``train`` call
(model loading included) is also given: it varies less with the load than the wall time.

* ``speed``: the pair path (Sentence-Transformers' trainer, one row and one document encoding per pair; a
  short run on ``--pair-docs`` documents, batches of ``--pair-batch`` pairs) against the grouped path in fp32
  and in bf16 on ``--docs`` documents (steps of ``--batch-size`` documents); ``--repeats`` runs each, the
  table gives min and median.
* ``curve``: the per-step training loss of fp32 and bf16 on the same documents and seed (steps of
  ``--batch-size`` documents) and their largest difference.
* ``epoch``: one grouped epoch at the defaults (``--precision auto``) on ``--docs`` documents, and the
  time that makes for 5,000 documents (linear in documents).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def one(spec: dict) -> dict:
    """Run one training configuration in this process; returns the card's timing, losses and peak RSS."""
    import torch

    from esrank.corpus import read_documents
    from esrank.ranking.training import TrainConfig, train

    torch.set_num_threads(spec["threads"])
    docs = [d for _, d in zip(range(spec["docs"]), read_documents(spec["data"]))]
    losses: list[float] = []

    class Record:
        def on_step_end(self, args, state, control, **kw):
            losses.append(state.log_history[-1].get("loss") if state.log_history else None)

    callbacks: list = []
    if spec["grouping"] == "documents":
        callbacks = [Record()]
    cfg = TrainConfig(batch_size=spec["batch_size"], mini_batch_size=32, epochs=1, max_seq_length=256, seed=7,
                      device="cpu", grouping=spec["grouping"], precision=spec["precision"], cached=True,
                      warmup=spec.get("warmup", 0.1), lr=spec.get("lr", 2e-5))
    with tempfile.TemporaryDirectory() as tmp:
        cpu0 = time.process_time()
        r = train(docs, Path(tmp) / "model", cfg, resume=False, callbacks=callbacks)
        cpu = time.process_time() - cpu0
    t = r.card["training"]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    return {"grouping": spec["grouping"], "precision": t["precision"], "documents": r.documents,
            "pairs": r.pairs, "steps": r.steps, "seconds": r.seconds, "losses": losses,
            "final_loss": r.final_loss, "peak_rss_mib": rss, "cpu_seconds": cpu}


def run(spec: dict) -> dict:
    """One configuration in a subprocess."""
    out = subprocess.run([sys.executable, __file__, "one", "--spec", json.dumps(spec)],
                         capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"bench_training: {spec}: {out.stderr.strip().splitlines()[-1] if out.stderr else 'failed'}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def speed(args: argparse.Namespace) -> None:
    """Pair path vs grouped fp32 vs grouped bf16: documents/s and pairs/s, min and median of repeats."""
    base = {"data": args.data, "threads": args.threads}
    configs = [
        ("pair path (trainer), fp32", {**base, "grouping": "pairs", "precision": "fp32", "docs": args.pair_docs,
                                      "batch_size": args.pair_batch}),
        ("grouped, fp32", {**base, "grouping": "documents", "precision": "fp32", "docs": args.docs,
                           "batch_size": args.batch_size}),
        ("grouped, bf16", {**base, "grouping": "documents", "precision": "bf16", "docs": args.docs,
                           "batch_size": args.batch_size}),
    ]
    results: dict[str, list[dict]] = {name: [] for name, _ in configs}
    for _ in range(args.repeats):  # interleaved, so that a burst of load hits every configuration alike
        for name, spec in configs:
            r = run(spec)
            results[name].append(r)
            print(f"  {name}: {r['documents']} documents, {r['pairs']} pairs, {r['steps']} steps, "
                  f"{r['seconds']:.1f}s, CPU {r['cpu_seconds']:.1f}s, peak RSS {r['peak_rss_mib']:.0f} MiB", file=sys.stderr, flush=True)
    print("| path | documents | pairs | steps | seconds (min / median) | documents/s (best / median) | "
          "pairs/s (best / median) | × documents/s of the pair path (best / median) | CPU s per document (min) "
          "| × by CPU time | peak RSS (MiB) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    ref_best = ref_med = ref_cpu = None
    for name, _ in configs:
        rs = results[name]
        secs = [r["seconds"] for r in rs]
        dps = [r["documents"] / s for r, s in zip(rs, secs)]
        pps = [r["pairs"] / s for r, s in zip(rs, secs)]
        best, med = max(dps), statistics.median(dps)
        cpu = min(r["cpu_seconds"] / r["documents"] for r in rs)
        if ref_best is None:
            ref_best, ref_med, ref_cpu = best, med, cpu
        print(f"| {name} | {rs[0]['documents']} | {rs[0]['pairs']} | {rs[0]['steps']} | {min(secs):.1f} / "
              f"{statistics.median(secs):.1f} | {best:.2f} / {med:.2f} | {max(pps):.2f} / {statistics.median(pps):.2f} "
              f"| {best / ref_best:.1f} / {med / ref_med:.1f} | {cpu:.2f} | {ref_cpu / cpu:.1f} "
              f"| {max(r['peak_rss_mib'] for r in rs):.0f} |")


def curve(args: argparse.Namespace) -> None:
    """fp32 vs bf16 loss per step on the same data and seed."""
    base = {"data": args.data, "threads": args.threads, "grouping": "documents", "docs": args.docs,
            "batch_size": args.batch_size, "warmup": 0.0, "lr": args.lr}
    a = run({**base, "precision": "fp32"})
    b = run({**base, "precision": "bf16"})
    print(f"{a['documents']} documents, {a['pairs']} pairs, steps of {args.batch_size} documents, lr {args.lr}, "
          f"no warm-up; fp32 {a['seconds']:.1f}s, bf16 {b['seconds']:.1f}s ({a['seconds'] / b['seconds']:.2f}×)")
    print("| step | fp32 loss | bf16 loss | difference | relative |\n|---:|---:|---:|---:|---:|")
    worst = 0.0
    for i, (x, y) in enumerate(zip(a["losses"], b["losses"]), 1):
        worst = max(worst, abs(x - y) / abs(x))
        print(f"| {i} | {x:.4f} | {y:.4f} | {y - x:+.4f} | {abs(x - y) / abs(x):.2%} |")
    mean_a, mean_b = statistics.mean(a["losses"]), statistics.mean(b["losses"])
    print(f"\nlargest relative difference per step {worst:.2%}; mean loss fp32 {mean_a:.4f}, bf16 {mean_b:.4f} "
          f"({abs(mean_b - mean_a) / mean_a:.2%})")


def epoch(args: argparse.Namespace) -> None:
    """One grouped epoch at the defaults on --docs documents, extrapolated to 5,000."""
    r = run({"data": args.data, "threads": args.threads, "grouping": "documents", "precision": "auto",
             "docs": args.docs, "batch_size": args.batch_size})
    per_doc = r["seconds"] / r["documents"]
    print(f"one epoch, {r['documents']} documents ({r['pairs']} pairs, {r['steps']} steps of {args.batch_size}, "
          f"{r['precision']}): {r['seconds']:.0f}s = {r['documents'] / r['seconds']:.2f} documents/s, "
          f"{r['pairs'] / r['seconds']:.2f} pairs/s, peak RSS {r['peak_rss_mib']:.0f} MiB; "
          f"5,000 documents: {per_doc * 5000 / 60:.1f} min (extrapolated)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=["speed", "curve", "epoch", "one"])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "acm-dev" / "train.jsonl"))
    ap.add_argument("--docs", type=int, default=500)
    ap.add_argument("--pair-docs", type=int, default=100)
    ap.add_argument("--pair-batch", type=int, default=128, help="pairs per batch of the pair path")
    ap.add_argument("--batch-size", type=int, default=250, help="documents per step of the grouped path")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mode == "one":
        print(json.dumps(one(json.loads(args.spec))))
        return
    from bench.common import machine_facts

    print(f"machine: {machine_facts()} (shared with other jobs); torch threads {args.threads}; "
          f"data {Path(args.data).parent.name}/{Path(args.data).name}")
    {"speed": speed, "curve": curve, "epoch": epoch}[args.mode](args)


if __name__ == "__main__":
    main()
