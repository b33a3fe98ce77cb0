"""Length-sorting window: `esrank rank` docs/s by ranking batch (the window documents are sorted by length in) and
document batch (documents per forward pass), per encoder runtime, on acm-dev with a 20k embedded index.

    python3 bench/bench_rank_window.py --data ../shared/data/acm-dev [--docs 512] [--repeat 2]
        [--layouts 64:64,64:32,256:32,256:64] [--runtimes "torch fp32,OpenVINO fp32"]

The setup is bench_rank_e2e's (`esrank rank` after load, train's mix fit, export-model and encode-keyphrases; k
as `esrank rank`'s default, every candidate kept). A layout ``W:B`` ranks the test documents in batches of W
(`esrank rank --batch-size W`), whose documents are sorted by length and encoded B at a time
(``Encoder.document_batch_size``). The build before this bench ranked 64:64 with torch and 64:32 with an exported
runtime. Also printed: each layout's padding (extra word pieces over the documents' own, from the tokenizer) and
how many documents keep the same top 5 as the first layout. Rounds interleaved; min and median docs/s.
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

from bench.bench_rank_e2e import OPENVINO_FP32, RUNTIMES, build_setup, setup_arguments  # noqa: E402
from bench.common import machine_line  # noqa: E402
from esrank.commands.common import settled_heap  # noqa: E402
from esrank.ranking.pipeline import rank_documents  # noqa: E402


def padding(lengths: list[int], window: int, batch: int) -> float:
    """Extra word pieces (share of the documents' own) when windows of ``window`` are sorted by length and cut
    into batches of ``batch``, each padded to its longest."""
    padded = 0
    for start in range(0, len(lengths), window):
        part = sorted(lengths[start:start + window], reverse=True)
        padded += sum(max(part[i:i + batch]) * len(part[i:i + batch]) for i in range(0, len(part), batch))
    return padded / max(sum(lengths), 1) - 1


def main() -> None:
    """Build the setup once; time every runtime × layout, rounds interleaved; print a Markdown table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    setup_arguments(ap)
    ap.add_argument("--layouts", default="64:64,64:32,256:32,256:64", help="W:B pairs, comma separated")
    ap.add_argument("--runtimes", default=f"torch fp32,{OPENVINO_FP32}",
                    help=f"comma list of {', '.join([*RUNTIMES, OPENVINO_FP32])}")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    layouts = [tuple(int(x) for x in item.split(":")) for item in args.layouts.split(",")]
    labels = [s.strip() for s in args.runtimes.split(",") if s.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        setup = build_setup(Path(tmp), Path(args.data), index_docs=args.index_docs, test_docs=args.docs, k=args.k,
                            threads=args.threads, openvino_fp32=OPENVINO_FP32 in labels)
        rankers = {label: setup.ranker(label) for label in labels}
        tok = next(iter(rankers.values())).encoder.model
        cap = tok.max_seq_length
        lengths = [min(len(tok.tokenizer(d.full_text)["input_ids"]), cap) for d in setup.test]
        rates: dict[tuple[str, int, int], list[float]] = {(lb, w, b): [] for lb in labels for w, b in layouts}
        top5: dict[tuple[str, int, int], list[tuple[str, ...]]] = {}
        with settled_heap():
            for _ in range(args.repeat):
                for label, window, batch in rates:
                    ranker = rankers[label]
                    ranker.encoder.document_batch_size = batch
                    setup.settings.batch_size = window
                    t = time.perf_counter()
                    preds = list(rank_documents(setup.test, setup.backend, ranker, setup.settings, desc=label))
                    rates[(label, window, batch)].append(len(preds) / (time.perf_counter() - t))
                    top5[(label, window, batch)] = [tuple(k.phrase for k in p.keyphrases[:5]) for p in preds]
        for r in rankers.values():
            r.close()
        setup.backend.close()
    print(machine_line())
    print(f"{len(setup.train)} indexed, {len(setup.test)} ranked per round, k = {args.k}, {args.threads} threads, "
          f"{args.repeat} rounds; documents: mean {statistics.mean(lengths):.0f} word pieces (cut at {cap}).")
    print()
    print("| runtime | window : document batch | padding | docs/s min | docs/s median | × first layout (median) "
          "| same top 5 as first layout |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for label in labels:
        first = (label, *layouts[0])
        base = statistics.median(rates[first])
        for window, batch in layouts:
            key = (label, window, batch)
            same = sum(a == b for a, b in zip(top5[key], top5[first])) / max(len(top5[first]), 1)
            print(f"| {label} | {window} : {batch} | {100 * padding(lengths, window, batch):.1f}% | "
                  f"{min(rates[key]):.1f} | {statistics.median(rates[key]):.1f} | "
                  f"{statistics.median(rates[key]) / base:.2f} | {100 * same:.1f}% |")


if __name__ == "__main__":
    main()
