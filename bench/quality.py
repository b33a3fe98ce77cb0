"""The benchmark that decides: ranking quality on acm-dev (20k training, 2k test ACM records with author keywords).

load the training documents into an embedded BM25 index → fine-tune all-MiniLM-L6-v2 (1 epoch; optionally on a
stated deterministic subset) → rank the test documents with the neighbour vote, zero-shot, fine-tuned and mix (and
the zero-shot mix) at each k → PRMU table (present F1@Q, absent R@Q, F1@5, F1@10) with paired randomisation tests
against the vote and the zero-shot rows of the same k, and the wall time of each stage. Neighbours are retrieved
once at the largest k (smaller k take the top neighbours) and each document is encoded once per model. The mix
weight is fitted at each k on a validation share held out of the training documents (not fine-tuned on), through
the library's ``esrank.ranking.mix.fit_mix``; ranking goes through ``esrank.ranking.pipeline.rank_documents``.

Run (from the project root; writes docs/benchmarks/quality.md and prints the table):
    python3 bench/quality.py --data ../shared/data/acm-dev --train-docs 5000
"""
from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import machine_facts  # noqa: E402

from esrank.corpus import Document, read_documents  # noqa: E402
from esrank.evaluation.prmu import EvalResult, evaluate, paired_test, score_document  # noqa: E402
from esrank.ranking.mix import MixFit, fit_mix, validation_split  # noqa: E402
from esrank.ranking.pipeline import RankSettings, candidate_pools, rank_documents  # noqa: E402
from esrank.text import stemmed_key  # noqa: E402
from esrank.ranking.pools import RetrievedNeighbours  # noqa: E402
from esrank.ranking.ranker import Ranker, RankStats  # noqa: E402
from esrank.retrieval.embedded import EmbeddedBackend  # noqa: E402

METRICS = ("P_F1@Q", "Abs_R@Q", "all_F1@5", "all_F1@10")
LABELS = {"P_F1@Q": "present F1@Q", "Abs_R@Q": "absent R@Q", "all_F1@5": "F1@5", "all_F1@10": "F1@10"}


class Clock:
    """Wall time per named stage."""

    def __init__(self) -> None:
        self.stages: dict[str, float] = {}

    def stage(self, name: str) -> "_Timer":
        """A context manager adding its wall time to ``name``."""
        return _Timer(self, name)


class _Timer:
    def __init__(self, clock: Clock, name: str) -> None:
        self.clock, self.name = clock, name

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()
        print(f"[{time.strftime('%H:%M:%S')}] {self.name} ...", file=sys.stderr, flush=True)

    def __exit__(self, *exc: object) -> None:
        secs = time.perf_counter() - self.t0
        self.clock.stages[self.name] = self.clock.stages.get(self.name, 0.0) + secs
        print(f"[{time.strftime('%H:%M:%S')}] {self.name}: {secs:.0f}s", file=sys.stderr, flush=True)


def fine_tune(docs: list[Document], out: Path, args: argparse.Namespace, negatives: dict[str, list[str]] | None,
              hard_negatives: int) -> Path:
    """One epoch of the library's trainer with the `esrank train` defaults; the model directory."""
    from esrank.ranking.training import TrainConfig, train

    config = TrainConfig(epochs=args.epochs, seed=args.seed, threads=args.threads, hard_negatives=hard_negatives)
    res = train(docs, out, config, negatives=negatives, data_name="acm-dev train (subset)", resume=False)
    print(f"fine-tuned on {res.pairs} pairs of {res.documents} documents in {res.steps} steps, {res.seconds:.0f}s "
          f"({res.pairs / max(res.seconds, 1e-9):.1f} pairs/s, {res.documents / max(res.seconds, 1e-9):.2f} "
          f"docs/s); final loss {res.final_loss}", file=sys.stderr, flush=True)
    return Path(res.model_dir)


def rank_all(name: str, docs: list[Document], backend: RetrievedNeighbours, ranker: Ranker | None,
             settings: RankSettings) -> dict[str, list[str]]:
    """doc id → ranked phrases (every candidate), through the one ranking path."""
    return {p.id: p.phrases for p in rank_documents(docs, backend, ranker, settings, desc=name, stats=RankStats())}


def fmt_p(p: float) -> str:
    """A p-value for the table."""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def baselines_of(name: str, k: int) -> list[tuple[str, str]]:
    """(baseline system, marker) pairs a system is tested against: the vote and zero-shot rows of its k."""
    vote, zero = f"vote k={k}", f"zero-shot k={k}"
    if name == vote:
        return []
    if name == zero:
        return [(vote, "†")]
    if name.endswith(f" mix + profiles k={k}"):  # also against the same encoder's mix model without profiles
        return [(vote, "†"), (zero, "‡"), (name.replace(" + profiles", ""), "§")]
    return [(vote, "†"), (zero, "‡")]


def tables(result: EvalResult, ks: list[int], systems_at: dict[int, list[str]], rounds: int) -> tuple[str, str]:
    """The markdown PRMU table (†: above the vote, ‡: above zero-shot, p < 0.05) and the p-value table."""
    rows = ["| k | system | " + " | ".join(LABELS[m] for m in METRICS) + " |", "|" + "---|" * (len(METRICS) + 2)]
    prow = ["| k | system | against | " + " | ".join(LABELS[m] for m in METRICS) + " |",
            "|" + "---|" * (len(METRICS) + 3)]
    for k in ks:
        for name in systems_at[k]:
            tests = {base: [paired_test(result, m, base, name, rounds=rounds) for m in METRICS]
                     for base, _ in baselines_of(name, k)}
            cells = []
            for j, m in enumerate(METRICS):
                v, _ = result.systems[name].mean(m)
                mark = "".join(sym for base, sym in baselines_of(name, k)
                               if tests[base][j].p_randomization < 0.05 and tests[base][j].mean_b > tests[base][j].mean_a)
                cells.append(f"{100 * v:.1f}{mark}")
            short = name.rsplit(" k=", 1)[0]
            rows.append(f"| {k} | {short} | " + " | ".join(cells) + " |")
            for base, ps in tests.items():
                prow.append(f"| {k} | {short} | {base.rsplit(' k=', 1)[0]} | "
                            + " | ".join(f"{100 * (s.mean_b - s.mean_a):+.1f} (p {fmt_p(s.p_randomization)})"
                                         for s in ps) + " |")
    return "\n".join(rows), "\n".join(prow)


def choose_defaults(result: EvalResult, ks: list[int], systems_at: dict[int, list[str]]) -> str:
    """The rule for `esrank rank`'s defaults: k maximising the mean of present F1@Q and absent R@Q of the mix;
    mix when, at that k, it beats the pure cosine of the same model on both present F1@Q and absent R@Q, else the
    cosine at its own best k."""
    def scores(name: str) -> tuple[float, float, float]:
        p, a = result.systems[name].mean("P_F1@Q")[0], result.systems[name].mean("Abs_R@Q")[0]
        return p, a, (p + a) / 2

    model = "fine-tuned" if f"fine-tuned k={ks[0]}" in result.systems else "zero-shot"
    if f"{model} k={ks[0]}" not in result.systems:
        return "no bi-encoder ranked: nothing to decide"
    k_mix = max(ks, key=lambda k: scores(f"{model} mix k={k}")[2])
    mix, cos = scores(f"{model} mix k={k_mix}"), scores(f"{model} k={k_mix}")
    wins = mix[0] > cos[0] and mix[1] > cos[1]
    k_cos = max(ks, key=lambda k: scores(f"{model} k={k}")[2])
    by_k = "; ".join(f"k={k}: mix {100 * scores(f'{model} mix k={k}')[2]:.1f}, cosine "
                     f"{100 * scores(f'{model} k={k}')[2]:.1f}" for k in ks)
    head = (f"mean of present F1@Q and absent R@Q ({model}) — {by_k}. At k={k_mix} (best for mix) the mix "
            f"{'beats' if wins else 'does not beat'} the cosine on both present F1@Q ({100 * mix[0]:.1f} vs "
            f"{100 * cos[0]:.1f}) and absent R@Q ({100 * mix[1]:.1f} vs {100 * cos[1]:.1f})")
    return head + (f" → method `mix`, k = {k_mix}." if wins else f" → method `model`, k = {k_cos}.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/acm-dev", help="directory with train.jsonl and test.jsonl")
    ap.add_argument("--index-docs", type=int, default=None, help="index only the first N training documents")
    ap.add_argument("--train-docs", type=int, default=None,
                    help="fine-tune on the first N training documents (outside the validation share) only")
    ap.add_argument("--test-docs", type=int, default=None, help="rank only the first N test documents")
    ap.add_argument("--ks", default="5,10,20")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--hard-negatives", type=int, default=0,
                    help="also fine-tune with this many neighbour-pool hard negatives per pair (0: skip)")
    ap.add_argument("--skip-fine-tune", action="store_true", help="vote, zero-shot and zero-shot mix only")
    ap.add_argument("--profiles", action="store_true",
                    help="also the mix model with keyphrase profiles (every indexed document encoded once per encoder)")
    ap.add_argument("--rounds", type=int, default=10_000, help="randomisation rounds of the paired tests")
    ap.add_argument("--out", default="docs/benchmarks/quality.md", help="markdown report ('' for none)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    ks = sorted({int(x) for x in args.ks.split(",") if x.strip()})
    clock = Clock()
    start = time.perf_counter()
    data = Path(args.data)
    with clock.stage("reading"):
        train_all = list(read_documents(data / "train.jsonl"))
        test = list(read_documents(data / "test.jsonl"))
    indexed = train_all[: args.index_docs] if args.index_docs else train_all
    test = test[: args.test_docs] if args.test_docs else test
    rest, validation = validation_split(indexed)
    tune = rest[: args.train_docs] if args.train_docs else rest
    print(f"{len(indexed)} indexed, {len(tune)} fine-tuned on, {len(validation)} validation, {len(test)} test "
          "documents", file=sys.stderr)
    systems: dict[str, dict[str, list[str]]] = {}
    systems_at: dict[int, list[str]] = {k: [] for k in ks}
    fits: dict[str, MixFit] = {}
    ceiling: dict[int, dict[str, list[str]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        backend = EmbeddedBackend("acm-dev", Path(tmp) / "index")
        backend.create(overwrite=True)
        with clock.stage("index loading"):
            backend.bulk_add(indexed)
        cached = RetrievedNeighbours(backend, max(ks))
        with clock.stage(f"retrieval (k={max(ks)}, test + validation)"):
            for docs in (test, validation):
                for i in range(0, len(docs), 256):
                    batch = docs[i:i + 256]
                    cached.neighbours(batch, max(ks), [{d.id} for d in batch])

        def run(model_name: str, ranker: Ranker | None) -> None:
            profiles = None
            if ranker is not None and args.profiles:
                from esrank.ranking.profiles import KeyphraseProfiles

                with clock.stage(f"keyphrase profiles: {model_name}"):
                    profiles = KeyphraseProfiles.build(ranker.encoder, indexed, total=len(indexed))
            for k in ks:
                name = f"{model_name} k={k}"
                with clock.stage(f"ranking: {model_name}"):
                    settings = RankSettings(k=k, top_n=None, batch_size=128,
                                            method="vote" if ranker is None else "model")
                    systems[name] = rank_all(name, test, cached, ranker, settings)
                systems_at[k].append(name)
                if ranker is None:
                    continue
                with clock.stage(f"mix fit: {model_name}"):
                    fit = fit_mix(validation, cached, ranker, score_document, k=k, batch_size=128)
                fits[f"{model_name} mix k={k}"] = fit
                runs = [("linear mix", fit, None), ("mix", fit, fit.model)]
                if profiles is not None:
                    ranker.profiles = profiles
                    with clock.stage(f"mix fit: {model_name} + profiles"):
                        fit_p = fit_mix(validation, cached, ranker, score_document, k=k, batch_size=128)
                    fits[f"{model_name} mix + profiles k={k}"] = fit_p
                    runs.append(("mix + profiles", fit_p, fit_p.model))
                for label, with_fit, mix_model in runs:
                    name = f"{model_name} {label} k={k}"
                    ranker.profiles = profiles if label == "mix + profiles" else None
                    with clock.stage(f"ranking: {model_name} {label}"):
                        mixed = RankSettings(k=k, top_n=None, batch_size=128, method="mix",
                                             mix_weight=with_fit.weight, mix_model=mix_model)
                        systems[name] = rank_all(name, test, cached, ranker, mixed)
                    systems_at[k].append(name)
                ranker.profiles = None
            if ranker is not None:
                print(f"{model_name}: {ranker.stats.summary()}", file=sys.stderr, flush=True)

        run("vote", None)
        for k in ks:  # the pool's ceiling: gold candidates first (what a perfect ranker of these pools reaches)
            ceiling[k] = {}
            for d, p in zip(test, candidate_pools(cached, test, RankSettings(k=k, batch_size=256))):
                gold = {stemmed_key(x) for x in d.keyphrases}
                ceiling[k][d.id] = sorted(p.phrases, key=lambda x: stemmed_key(x) not in gold)
        zero = Ranker.load(None, threads=args.threads, remember_documents=True)
        run("zero-shot", zero)
        zero.close()
        models: list[tuple[str, int]] = []
        if not args.skip_fine_tune:
            models.append(("fine-tuned", 0))
            if args.hard_negatives:
                models.append(("fine-tuned hard-neg", args.hard_negatives))
        for label, n_neg in models:
            negatives = None
            if n_neg:
                from esrank.ranking.training import negatives_from_pools

                with clock.stage("hard-negative pools (k=5)"):
                    settings = RankSettings(k=5, batch_size=256)

                    pools = []
                    for i in range(0, len(tune), 256):
                        pools.extend(candidate_pools(cached, tune[i:i + 256], settings))
                    negatives = negatives_from_pools(pools)
            with clock.stage(f"fine-tuning ({label})"):
                model_dir = fine_tune(tune, Path(tmp) / label.replace(" ", "-"), args, negatives, n_neg)
            ranker = Ranker.load(model_dir, threads=args.threads, remember_documents=True)
            run(label, ranker)
            ranker.close()
        backend.close()
    with clock.stage("evaluation"):
        result = evaluate(test, systems)
        bounds = evaluate(test, {f"k={k}": ranked for k, ranked in ceiling.items()})
    bound_line = "; ".join(f"k={k}: {100 * bounds.systems[f'k={k}'].mean('P_F1@Q')[0]:.1f} / "
                           f"{100 * bounds.systems[f'k={k}'].mean('Abs_R@Q')[0]:.1f}" for k in ks)
    with clock.stage("significance tests"):
        table, ptable = tables(result, ks, systems_at, args.rounds)
    decision = choose_defaults(result, ks, systems_at)
    total = time.perf_counter() - start
    cmd = "python3 " + " ".join(shlex.quote(a) for a in sys.argv)
    fit_lines = [f"| {name.rsplit(' k=', 1)[0].replace(' mix', '')} | {f.k} | {f.weight:.2f} | "
                 f"{100 * f.objective_value:.1f} | {100 * (f.model_objective or 0.0):.1f} | {f.validation_documents} |"
                 for name, f in fits.items()]
    report = "\n".join([
        f"## Ranking quality on acm-dev (`bench/quality.py`)",
        "",
        f"Command: `{cmd}`",
        "",
        f"Machine: {machine_facts()}; shared with other jobs (wall times vary between runs; quality figures do not).",
        f"Data: `{args.data}`: {len(indexed)} training documents indexed (embedded bm25s index), "
        f"{len(validation)} of them held out as the mix-validation share (not fine-tuned on), "
        + ("no fine-tuning (`--skip-fine-tune`); " if args.skip_fine_tune else
           f"fine-tuning on {len(tune)} documents ({'the first ' + str(args.train_docs) + ' outside the validation share, in file order' if args.train_docs else 'all the others'}), "
           f"{args.epochs} epoch(s), `esrank train` defaults otherwise; ")
        + f"{len(test)} test documents ranked, every "
        "candidate kept. Macro averages ×100 over the test documents (present F1@Q over documents with present "
        "gold, absent R@Q over documents with absent gold; F1@5/F1@10 over all gold).",
        "† significantly above the vote of the same k, ‡ significantly above zero-shot of the same k, "
        "§ (mix + profiles) significantly above the same encoder's mix model without keyphrase profiles "
        f"(paired randomisation test, {args.rounds} rounds, p < 0.05).",
        "",
        table,
        "",
        "Differences and p-values (randomisation test):",
        "",
        ptable,
        "",
        "Mixes fitted on the validation documents: the linear mix's weight (cosine share) and its objective, and "
        "the mix model's objective on the same documents (in-sample; objective: mean of present F1@Q and absent "
        "R@Q, ×100):",
        "",
        "| encoder | k | linear weight | linear objective | model objective | validation documents |",
        "|---|---|---|---|---|---|",
        *fit_lines,
        "",
        "The pools' ceiling (every gold candidate ranked first: what a perfect ranker of these pools reaches), "
        f"present F1@Q / absent R@Q: {bound_line}.",
        "",
        f"Defaults from this run: {decision}",
        "",
        "Wall time per stage:",
        "",
        "| stage | seconds |",
        "|---|---|",
        *[f"| {name} | {secs:.0f} |" for name, secs in clock.stages.items()],
        f"| **total** | {total:.0f} |",
        "",
    ])
    print(report)
    if args.out:
        out = Path(args.out)
        tmp_out = out.with_suffix(".md.tmp")
        tmp_out.write_text(report)
        tmp_out.replace(out)
        print(f"written to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
