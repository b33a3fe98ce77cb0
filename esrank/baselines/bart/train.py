"""Fine-tuning BART-KP (One2Seq) with the Hugging Face ``Seq2SeqTrainer`` (AdamW, linear schedule),
checkpoints under ``OUT/checkpoints`` (resumable), the final model + tokenizer + ``esrank_bart.json`` in ``OUT``."""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from torch.utils.data import Dataset

from ... import progress
from ...corpus import Document
from ...errors import ConfigError, InputError
from .data import KEYPHRASE_SEP, document_target, format_source
from .model import BartMeta, add_keyphrase_sep, load_model, load_tokenizer, max_source_tokens, \
    quiet_transformers, source_separator

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
PAPER_BATCH = 168
"""The effective batch (documents per optimiser step) of the BART-KP paper's training."""


@dataclass
class BartTrainConfig:
    """Options of a fine-tuning run (the CLI's ``esrank bart train`` options)."""

    out: str
    model: str = "facebook/bart-base"
    epochs: float = 10.0  # the paper's 10 epochs
    lr: float = 5e-5  # the paper's learning rate
    batch_size: int = 8
    grad_accum: int = PAPER_BATCH // 8  # 8 × 21 = the paper's effective batch of 168
    max_source_length: int = 512
    max_target_length: int = 128
    weight_decay: float = 0.01
    warmup_ratio: float = 0.0
    seed: int = 42
    resume: bool = False
    max_steps: int = -1
    save_total_limit: int = 2
    logging_steps: int = 50
    device: str = "auto"


@dataclass
class EncodedSet:
    """Tokenised training pairs, and how many documents were skipped (no usable keyphrase)."""

    features: list[dict[str, list[int]]]
    skipped: int = 0


@dataclass
class BartTrainResult:
    """What a fine-tuning run did."""

    out: Path
    train_docs: int
    skipped: int
    steps: int
    losses: list[float] = field(default_factory=list)
    eval_loss: float | None = None
    resumed_from: str | None = None

    def summary(self) -> str:
        """One line for the terminal."""
        s = f"trained on {self.train_docs} documents ({self.skipped} without keyphrases skipped), {self.steps} steps"
        if self.losses:
            s += f", loss {self.losses[0]:.3f} -> {self.losses[-1]:.3f}"
        if self.eval_loss is not None:
            s += f", dev loss {self.eval_loss:.3f}"
        if self.resumed_from:
            s += f", resumed from {self.resumed_from}"
        return s + f"; model in {self.out}"


def encode_documents(docs: Iterable[Document], tokenizer: Any, max_source_length: int,
                     max_target_length: int, sep: str = KEYPHRASE_SEP) -> EncodedSet:
    """Source/target token ids of documents; documents without keyphrases are skipped and counted."""
    src_sep = source_separator(tokenizer)
    sources: list[str] = []
    targets: list[str] = []
    skipped = 0
    for doc in docs:
        target = document_target(doc, sep)
        if not target:
            skipped += 1
            continue
        sources.append(format_source(doc.title, doc.text, src_sep))
        targets.append(target)
    if not sources:
        return EncodedSet([], skipped)
    enc = tokenizer(sources, max_length=max_source_length, truncation=True)
    lab = tokenizer(text_target=targets, max_length=max_target_length, truncation=True)
    feats = [{"input_ids": list(i), "attention_mask": list(a), "labels": list(y)}
             for i, a, y in zip(enc["input_ids"], enc["attention_mask"], lab["input_ids"])]
    return EncodedSet(feats, skipped)


class _ListDataset(Dataset):
    """A map-style dataset over a list of feature dicts (what the Trainer's DataLoader needs)."""

    def __init__(self, items: list[dict[str, list[int]]]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return self.items[i]


def _last_checkpoint(out: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    ckpt = out / CHECKPOINT_DIR
    return get_last_checkpoint(str(ckpt)) if ckpt.is_dir() else None


def _use_cpu(device: str) -> bool:
    import torch

    if device == "auto":
        return not torch.cuda.is_available()
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: no CUDA device is available")
        return False
    if device != "cpu":
        raise ConfigError(f"--device must be auto, cpu or cuda, not {device!r}")
    return True


def train_bart(train_docs: Iterable[Document], config: BartTrainConfig,
               dev_docs: Iterable[Document] | None = None) -> BartTrainResult:
    """Fine-tune a seq2seq model to generate each document's keyphrases as one separated sequence."""
    from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments, set_seed

    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a directory", source=str(out))
    resume_from = None
    if config.resume:
        resume_from = _last_checkpoint(out)
        if resume_from is None:
            raise ConfigError(f"--resume: no checkpoint in {out / CHECKPOINT_DIR}")
        log.info("resuming from %s", resume_from)
    use_cpu = _use_cpu(config.device)
    set_seed(config.seed)
    quiet_transformers()
    tokenizer = load_tokenizer(config.model)
    model = load_model(config.model)
    add_keyphrase_sep(tokenizer, model, KEYPHRASE_SEP)
    src_len = max_source_tokens(model, config.max_source_length)
    tgt_len = max_source_tokens(model, config.max_target_length)
    train = encode_documents(train_docs, tokenizer, src_len, tgt_len)
    if not train.features:
        raise InputError("no training document has keyphrases", source="--data")
    dev = encode_documents(dev_docs, tokenizer, src_len, tgt_len) if dev_docs is not None else None
    has_dev = dev is not None and bool(dev.features)

    fp16 = not use_cpu  # fp16 mixed precision on GPU only
    steps_per_epoch = math.ceil(len(train.features) / (config.batch_size * config.grad_accum))
    args = Seq2SeqTrainingArguments(
        output_dir=str(out / CHECKPOINT_DIR),
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        learning_rate=config.lr,
        lr_scheduler_type="linear",
        optim="adamw_torch",
        weight_decay=config.weight_decay,
        warmup_steps=int(config.warmup_ratio * steps_per_epoch * config.epochs),
        logging_strategy="steps",
        logging_steps=max(1, min(config.logging_steps, steps_per_epoch)),
        save_strategy="epoch",
        save_total_limit=config.save_total_limit,
        eval_strategy="epoch" if has_dev else "no",
        seed=config.seed,
        fp16=fp16,
        use_cpu=use_cpu,
        report_to="none",
        disable_tqdm=not progress.enabled(),
        dataloader_num_workers=0,
        remove_unused_columns=False,
    )
    collator = DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100, padding=True)
    trainer = Seq2SeqTrainer(
        model=model, args=args, data_collator=collator, train_dataset=_ListDataset(train.features),
        eval_dataset=_ListDataset(dev.features) if has_dev and dev is not None else None,
        processing_class=tokenizer,
    )
    if not progress.enabled():
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # it prints every log dict on stdout
    state = trainer.train(resume_from_checkpoint=resume_from)
    out.mkdir(parents=True, exist_ok=True)
    trainer.save_model(str(out))
    tokenizer.save_pretrained(str(out))
    BartMeta(KEYPHRASE_SEP, src_len, tgt_len, config.model, source_separator(tokenizer)).save(out)
    history = trainer.state.log_history
    losses = [float(h["loss"]) for h in history if "loss" in h]
    evals = [float(h["eval_loss"]) for h in history if "eval_loss" in h]
    return BartTrainResult(out, len(train.features), train.skipped, int(state.global_step), losses,
                           evals[-1] if evals else None, resume_from)
