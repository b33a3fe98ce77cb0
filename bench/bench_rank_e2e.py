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
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.common import machine_line  # noqa: E402
from esrank.commands.common import settled_heap  # noqa: E402
from esrank.corpus import Document, read_documents  # noqa: E402
from esrank.evaluation.prmu import score_document  # noqa: E402
from esrank.ranking.encoder import default_model_path, warm_cache  # noqa: E402
from esrank.ranking.mix import fit_mix, validation_split, write_fit  # noqa: E402
from esrank.ranking.pipeline import DEFAULT_BATCH, DEFAULT_K, RankSettings, rank_documents  # noqa: E402
from esrank.ranking.ranker import Ranker, RankStats  # noqa: E402
from esrank.ranking.runtimes import export_model  # noqa: E402
from esrank.retrieval.embedded import EmbeddedBackend  # noqa: E402

RUNTIMES = {  # label → (runtime, precision)
    "torch fp32": ("torch", "fp32"),
    "torch bf16": ("torch", "bf16"),
    "OpenVINO int8": ("openvino", "fp32"),
}
OPENVINO_FP32 = "OpenVINO fp32"  # build_setup(openvino_fp32=True): the exact export, in a model directory of its own


@dataclass
class RankSetup:
    """What `esrank rank` has at hand after load, train (mix fit), export-model and encode-keyphrases."""

    backend: EmbeddedBackend
    model: Path  # the model directory: the packaged MiniLM with its mix fit and its OpenVINO int8 export
    model_openvino_fp32: Path | None  # a copy holding only the OpenVINO fp32 export (None: not built)
    settings: RankSettings  # `esrank rank`'s defaults with the fitted mix model
    train: list[Document]
    validation: list[Document]
    test: list[Document]
    phrases: list[str]  # every indexed keyphrase (what encode-keyphrases encodes)
    cache_dir: Path
    threads: int
    times: dict[str, float] = field(default_factory=dict)  # setup stage → seconds
    export_speedups: dict[str, float] = field(default_factory=dict)  # export → its check's speed-up on torch fp32

    def ranker(self, label: str, *, warm: bool = True) -> Ranker:
        """A ranker on runtime ``label`` (a RUNTIMES key, or OPENVINO_FP32); ``warm``: its keyphrase cache filled with
        every indexed keyphrase as encode-keyphrases fills it, else an empty in-memory cache (`esrank rank` without
        it)."""
        model = self.model
        if label == OPENVINO_FP32:
            if self.model_openvino_fp32 is None:
                raise ValueError("build_setup(openvino_fp32=True) exports OpenVINO fp32")
            model, (rt, prec) = self.model_openvino_fp32, ("openvino", "fp32")
        else:
            rt, prec = RUNTIMES[label]
        ranker = Ranker.load(model, threads=self.threads, runtime=rt, precision=prec,
                             disk_cache=self.cache_dir if warm else False)
        if warm:
            t = time.perf_counter()
            warm_cache(ranker.cache, self.phrases)  # what encode-keyphrases does (per keyphrase precision)
            self.times[f"keyphrase cache, {label}"] = time.perf_counter() - t
        return ranker


def build_setup(root: Path, data: Path, *, index_docs: int = 20_000, test_docs: int = 512, k: int = DEFAULT_K,
                threads: int = 2, batch_size: int = DEFAULT_BATCH, openvino_fp32: bool = False) -> RankSetup:
    """Index the training documents under ``root``, fit the mix model, export OpenVINO int8 (calibrated on the
    first 128 training documents) and, with ``openvino_fp32``, OpenVINO fp32 into a copy of the model directory;
    the caller closes ``setup.backend``."""
    train = list(read_documents(data / "train.jsonl"))[:index_docs]
    test = list(read_documents(data / "test.jsonl"))[:test_docs]
    _, validation = validation_split(train)
    times: dict[str, float] = {}
    t = time.perf_counter()
    backend = EmbeddedBackend("e2e", root / "index")
    backend.create(overwrite=True)
    backend.bulk_add(train)
    times["index"] = time.perf_counter() - t
    model = root / "model"
    shutil.copytree(default_model_path(), model)
    t = time.perf_counter()
    fitter = Ranker.load(model, threads=threads, precision="fp32")
    fit = fit_mix(validation, backend, fitter, score_document, k=k, batch_size=128)
    write_fit(model, fit)
    fitter.close()
    times["mix fit"] = time.perf_counter() - t
    model_fp32: Path | None = None
    speedups: dict[str, float] = {}
    if openvino_fp32:  # copied before the int8 export, so that this directory holds the fp32 export only
        model_fp32 = root / "model-openvino-fp32"
        shutil.copytree(model, model_fp32)
        t = time.perf_counter()
        exported = export_model(model_fp32, "openvino", quantize="none", threads=threads)
        times["OpenVINO fp32 export"] = time.perf_counter() - t
        speedups[OPENVINO_FP32] = float(exported.check.get("speedup_vs_torch_fp32", 0.0))
    calibration = root / "calibration.jsonl"
    calibration.write_text("\n".join((data / "train.jsonl").read_text().splitlines()[:128]) + "\n")
    t = time.perf_counter()
    exported = export_model(model, "openvino", quantize="int8", calibration=calibration, threads=threads)
    times["OpenVINO int8 export"] = time.perf_counter() - t
    speedups["OpenVINO int8"] = float(exported.check.get("speedup_vs_torch_fp32", 0.0))
    settings = RankSettings(k=k, batch_size=batch_size, method="mix", mix_weight=fit.weight, mix_model=fit.model)
    phrases = sorted({p for d in train for p in d.keyphrases})
    return RankSetup(backend, model, model_fp32, settings, train, validation, test, phrases, root / "cache", threads,
                     times, speedups)


def setup_arguments(ap: argparse.ArgumentParser) -> None:
    """The options of the setup and the timed rounds, shared by the benches built on ``build_setup``."""
    ap.add_argument("--data", default="../shared/data/acm-dev")
    ap.add_argument("--index-docs", type=int, default=20_000)
    ap.add_argument("--docs", type=int, default=512, help="test documents ranked per round")
    ap.add_argument("-k", type=int, default=DEFAULT_K)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)


def main() -> None:
    """Build, fit, export, warm; then time each runtime, rounds interleaved; print a Markdown table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    setup_arguments(ap)
    ap.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        setup = build_setup(Path(tmp), Path(args.data), index_docs=args.index_docs, test_docs=args.docs, k=args.k,
                            threads=args.threads, batch_size=args.batch_size)
        train, validation, test, backend = setup.train, setup.validation, setup.test, setup.backend
        rankers = {label: setup.ranker(label) for label in RUNTIMES}
        settings = setup.settings
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
    print(machine_line())
    print(f"{len(train)} indexed, {len(validation)} validation (mix fit), {len(test)} ranked per round, k = {args.k}, "
          f"{args.threads} threads, batches of {args.batch_size}; setup: "
          + ", ".join(f"{name} {secs:.0f} s" for name, secs in setup.times.items()))
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
