"""`esrank rank` end to end at its defaults, per encoder runtime: docs/s on acm-dev with a 20k embedded index.

    python3 bench/bench_rank_e2e.py --data ../shared/data/acm-dev [--docs 512] [--repeat 2] [-k K]

What `esrank rank` does after `esrank load`, `esrank train`, `esrank export-model ... --runtime openvino --quantize int8`
and `esrank encode-keyphrases`: the training documents in an embedded index; a model directory (the packaged
all-MiniLM-L6-v2, copied) with its mix model fitted on the validation share as `esrank train` fits it (fine-tuning
changes the weights, not the speed, so it is skipped here); the OpenVINO int8 export calibrated on the index's first
training documents; the keyphrase cache filled with every indexed keyphrase. Then the first ``--docs`` test
documents are ranked through ``esrank.ranking.pipeline.rank_documents`` (retrieval, pools with keyphrase
frequencies, document encoding, mix-model scoring; every candidate kept) with each runtime, rounds interleaved;
min and median docs/s, and the time split of the last round. The neighbour vote (no encoder) is timed alongside.
Compare as ratios inside one run: the machine may be shared.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.common import machine_facts  # noqa: E402
from esrank.commands.common import settled_heap  # noqa: E402
from esrank.corpus import read_documents  # noqa: E402
from esrank.evaluation.prmu import score_document  # noqa: E402
from esrank.ranking.encoder import default_model_path, warm_cache  # noqa: E402
from esrank.ranking.mix import fit_mix, validation_split, write_fit  # noqa: E402
from esrank.ranking.pipeline import DEFAULT_K, RankSettings, rank_documents  # noqa: E402
from esrank.ranking.ranker import Ranker, RankStats  # noqa: E402
from esrank.ranking.runtimes import export_model  # noqa: E402
from esrank.retrieval.embedded import EmbeddedBackend  # noqa: E402

RUNTIMES = {  # label → (runtime, precision)
    "torch fp32": ("torch", "fp32"),
    "torch bf16": ("torch", "bf16"),
    "OpenVINO int8": ("openvino", "fp32"),
}


def main() -> None:
    """Build, fit, export, warm; then time each runtime, rounds interleaved; print a Markdown table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data/acm-dev")
    ap.add_argument("--index-docs", type=int, default=20_000)
    ap.add_argument("--docs", type=int, default=512, help="test documents ranked per round")
    ap.add_argument("-k", type=int, default=DEFAULT_K)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    data = Path(args.data)
    train = list(read_documents(data / "train.jsonl"))[: args.index_docs]
    test = list(read_documents(data / "test.jsonl"))[: args.docs]
    _, validation = validation_split(train)
    setup: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        backend = EmbeddedBackend("e2e", root / "index")
        backend.create(overwrite=True)
        backend.bulk_add(train)
        setup["index"] = time.perf_counter() - t
        model = root / "model"
        shutil.copytree(default_model_path(), model)
        t = time.perf_counter()
        fitter = Ranker.load(model, threads=args.threads, precision="fp32")
        fit = fit_mix(validation, backend, fitter, score_document, k=args.k, batch_size=128)
        write_fit(model, fit)
        fitter.close()
        setup["mix fit"] = time.perf_counter() - t
        calibration = root / "calibration.jsonl"
        calibration.write_text("\n".join((data / "train.jsonl").read_text().splitlines()[:128]) + "\n")
        t = time.perf_counter()
        export_model(model, "openvino", quantize="int8", calibration=calibration, threads=args.threads)
        setup["OpenVINO int8 export"] = time.perf_counter() - t
        cache_dir = root / "cache"
        phrases = sorted({p for d in train for p in d.keyphrases})
        rankers: dict[str, Ranker] = {}
        for label, (rt, prec) in RUNTIMES.items():
            rankers[label] = Ranker.load(model, threads=args.threads, runtime=rt, precision=prec, disk_cache=cache_dir)
            t = time.perf_counter()
            warm_cache(rankers[label].cache, phrases)  # what encode-keyphrases does (per keyphrase precision)
            setup[f"keyphrase cache, {label}"] = time.perf_counter() - t
        settings = RankSettings(k=args.k, batch_size=args.batch_size, method="mix", mix_weight=fit.weight,
                                mix_model=fit.model)
        rates: dict[str, list[float]] = {label: [] for label in [*RUNTIMES, "neighbour vote"]}
        last: dict[str, RankStats] = {}
        with settled_heap():  # as `esrank rank` does around its ranking loop
            for _ in range(args.repeat):
                for label in rates:
                    ranker = rankers.get(label)
                    stats = RankStats() if ranker is None else RankStats(cache=ranker.cache.stats)
                    if ranker is not None:
                        ranker.stats = stats
                    run_settings = settings if ranker is not None else RankSettings(k=args.k, method="vote",
                                                                                    batch_size=args.batch_size)
                    t = time.perf_counter()
                    n = sum(1 for _ in rank_documents(test, backend, ranker, run_settings, stats=stats, desc=label))
                    rates[label].append(n / (time.perf_counter() - t))
                    last[label] = stats
        for r in rankers.values():
            r.close()
        backend.close()
    load = os.getloadavg()
    print(f"Machine: {machine_facts()}; load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at the end.")
    print(f"{len(train)} indexed, {len(validation)} validation (mix fit), {len(test)} ranked per round, k = {args.k}, "
          f"{args.threads} threads, batches of {args.batch_size}; setup: "
          + ", ".join(f"{name} {secs:.0f} s" for name, secs in setup.items()))
    print()
    print("| runtime | docs/s min | docs/s median | × torch fp32 (median) | retrieval | doc encoding | candidate "
          "encoding | scoring | candidates/doc | cache hit rate |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    base = statistics.median(rates["torch fp32"])
    for label, values in rates.items():
        s = last[label]
        t_all = s.total_s or 1e-9
        split = " | ".join(f"{100 * x / t_all:.0f}%" for x in (s.retrieval_s, s.document_encoding_s,
                                                              s.candidate_encoding_s, s.scoring_s))
        hit = f"{100 * s.cache.hit_rate:.1f}%" if label in rankers else ""
        print(f"| {label} | {min(values):.1f} | {statistics.median(values):.1f} | "
              f"{statistics.median(values) / base:.2f} | {split} | {s.candidates / max(s.documents, 1):.1f} | {hit} |")


if __name__ == "__main__":
    main()
