"""`esrank bart train` and `esrank bart predict`: the BART-KP One2Seq baseline."""
from __future__ import annotations

import click

from ..corpus import DocumentReader
from ..cost import CostTracker, cost_options
from ..predictions import PredictionWriter
from .common import DEVICE, check_outputs, documents_input, echo_err, read_input, report_reads


@click.group("bart")
def bart_group() -> None:
    """BART-KP baseline: fine-tune a seq2seq model to generate keyphrases, then generate them with beam search.

    \b
      esrank bart train TRAIN.jsonl --out bart-kp/ --model facebook/bart-base [--quick]
      esrank bart predict TEST.jsonl --model bart-kp/ --out bart.jsonl
      esrank evaluate --gold TEST.jsonl --pred ranker.jsonl --pred bart.jsonl
    """


@bart_group.command("train")
@click.option("--dev", type=click.Path(dir_okay=False), default=None,
              help="Development documents: the loss on them is reported after each epoch.")
@click.option("--out", required=True, type=click.Path(file_okay=False), envvar="ESRANK_BART_OUT",
              help="Output directory: the final model, tokenizer and esrank_bart.json; checkpoints in "
                   "OUT/checkpoints.")
@click.option("--model", default="facebook/bart-base", show_default=True, envvar="ESRANK_BART_BASE_MODEL",
              help="Model to start from: a local directory or a hub name (hub names need a connection or the "
                   "Hugging Face cache). Safetensors weights only, no remote code.")
@click.option("--epochs", type=click.FloatRange(min=0, min_open=True), default=None, envvar="ESRANK_BART_EPOCHS",
              help="Training epochs [default: 10 as in the paper; 3 with --quick].")
@click.option("--max-steps", type=int, default=-1, show_default=True,
              help="Stop after this many optimiser steps (-1: run all epochs).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=5e-5, show_default=True,
              help="Peak learning rate (AdamW, linear decay).")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True,
              envvar="ESRANK_BART_BATCH_SIZE",
              help="Documents per forward/backward pass (the effective batch is this × --grad-accum).")
@click.option("--grad-accum", type=click.IntRange(min=1), default=None, envvar="ESRANK_BART_GRAD_ACCUM",
              help="Gradient accumulation steps (effective batch = batch size × this) [default: 168 ÷ batch "
                   "size, rounded up: the paper's effective batch of 168; 1 with --quick].")
@click.option("--quick", is_flag=True, envvar="ESRANK_BART_QUICK",
              help="Smaller settings for a try-out on a small machine: 3 epochs, no gradient accumulation "
                   "(effective batch = --batch-size); explicit --epochs/--grad-accum still win.")
@click.option("--warmup-ratio", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Fraction of the steps with a linear learning-rate warm-up.")
@click.option("--max-source-length", type=click.IntRange(min=8), default=512, show_default=True,
              help="Source tokens kept (title + text, truncated).")
@click.option("--max-target-length", type=click.IntRange(min=4), default=128, show_default=True,
              help="Target tokens kept (the separated keyphrases, truncated).")
@click.option("--seed", type=int, default=42, show_default=True, envvar="ESRANK_SEED", help="Random seed.")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in OUT/checkpoints.")
@click.option("--device", type=DEVICE, default="auto", show_default=True, envvar="ESRANK_DEVICE",
              help="auto (GPU when present, fp16 there), cpu, cuda or cuda:N.")
@documents_input(data_option=True)
@cost_options(approach="bart")
def train_cmd(data: str, reader: DocumentReader, tracker: CostTracker, dev: str | None, out: str, model: str,
              epochs: float | None, max_steps: int, lr: float, batch_size: int, grad_accum: int | None, quick: bool,
              warmup_ratio: float, max_source_length: int, max_target_length: int, seed: int, resume: bool,
              device: str) -> None:
    """Fine-tune BART (One2Seq): source `title<s>text`, target the keyphrases joined by a separator token,
    present ones first in order of appearance, then absent ones.

    Defaults are the paper's: 10 epochs, lr 5e-5, effective batch 168 (8 per step × 21 accumulated);
    --quick trains 3 epochs with an effective batch of --batch-size.
    """
    from ..baselines.bart.train import PAPER_BATCH, BartTrainConfig, train_bart

    if epochs is None:
        epochs = 3.0 if quick else 10.0
    if grad_accum is None:
        grad_accum = 1 if quick else -(-PAPER_BATCH // batch_size)

    check_outputs({}, {"DATA": data, "--dev": dev}, reader)
    with reader:
        docs = list(reader.read(data))
        dev_docs = list(reader.read(dev)) if dev else None
    report_reads(reader)
    config = BartTrainConfig(out=out, model=model, epochs=epochs, lr=lr, batch_size=batch_size,
                             grad_accum=grad_accum, max_source_length=max_source_length,
                             max_target_length=max_target_length, warmup_ratio=warmup_ratio, seed=seed,
                             resume=resume, max_steps=max_steps, device=device)
    echo_err(f"training {epochs:g} epochs, lr {lr:g}, effective batch {batch_size * grad_accum} "
             f"({batch_size} × {grad_accum} accumulated)")
    with tracker.stage("bart_training", items=len(docs)) as rec:
        result = train_bart(docs, config, dev_docs)
        rec.items = result.train_docs
    echo_err(result.summary())
    if tracker.log_file is not None:
        echo_err(tracker.summary())


@bart_group.command("predict")
@click.option("--model", required=True, envvar="ESRANK_BART_MODEL",
              help="A fine-tuned model directory written by `esrank bart train` (or a hub name of such a model).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, allow_dash=True),
              help="Predictions JSONL (same format as `esrank rank`, read by `esrank evaluate`); - for stdout.")
@click.option("--num-beams", type=click.IntRange(min=1), default=5, show_default=True, help="Beam width.")
@click.option("--num-return-sequences", type=click.IntRange(min=1), default=5, show_default=True,
              help="Beams returned per document and merged (best first, de-duplicated by stemmed form).")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True,
              envvar="ESRANK_BART_BATCH_SIZE", help="Documents per generation batch.")
@click.option("--max-source-length", type=click.IntRange(min=8), default=None,
              help="Source tokens kept (default: the length the model was trained with).")
@click.option("--max-target-length", type=click.IntRange(min=4), default=None,
              help="Generated tokens at most (default: the length the model was trained with).")
@click.option("--device", type=DEVICE, default="auto", show_default=True, envvar="ESRANK_DEVICE",
              help="auto (GPU when present), cpu, cuda or cuda:N.")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32", show_default=True,
              envvar="ESRANK_BART_PRECISION", help="Autocast precision of generation (bf16 helps recent CPUs).")
@documents_input(data_option=True)
@cost_options(approach="bart")
def predict_cmd(data: str, reader: DocumentReader, tracker: CostTracker, model: str, out: str, num_beams: int, num_return_sequences: int,
                batch_size: int, max_source_length: int | None, max_target_length: int | None, device: str,
                precision: str) -> None:
    """Generate keyphrases with beam search and write them ranked, with PRMU categories, one line per document."""
    from ..baselines.bart.predict import BartGenerator, BartPredictConfig, predict_bart

    check_outputs({"--out": out}, {"DATA": data}, reader)
    config = BartPredictConfig(model=model, num_beams=num_beams, num_return_sequences=num_return_sequences,
                               batch_size=batch_size, max_source_length=max_source_length,
                               max_target_length=max_target_length, device=device, precision=precision)
    generator = BartGenerator(config)
    with read_input(reader, data) as docs, PredictionWriter(out) as writer:
        with tracker.stage("bart_inference") as rec:
            pstats = predict_bart(docs, config, writer, generator=generator)
            rec.items = pstats.documents
    echo_err(f"{pstats.summary()}; written to {out}")
    if tracker.log_file is not None:
        echo_err(tracker.summary())


COMMANDS = [bart_group]
