"""Keyphrase generation with a fine-tuned BART-KP model: beam search, beams split on the separator,
phrases normalised and de-duplicated by stemmed form (best beam first), written as esrank predictions."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from ... import progress
from ...corpus import Document, chunked
from ...errors import ConfigError
from ...predictions import Prediction, PredictionWriter
from .data import Beam, format_source, merge_beams, split_ids
from .model import BartMeta, keyphrase_sep_id, legacy_source_separator, load_model, load_tokenizer, \
    max_source_tokens, quiet_transformers, source_separator

PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass
class BartPredictConfig:
    """Options of a generation run (the CLI's ``esrank bart predict`` options)."""

    model: str
    num_beams: int = 5
    num_return_sequences: int = 5
    batch_size: int = 8
    max_source_length: int | None = None
    max_target_length: int | None = None
    device: str = "auto"
    precision: str = "fp32"

    def check(self) -> None:
        """Raise ConfigError for inconsistent options."""
        if self.num_beams < 1 or self.batch_size < 1:
            raise ConfigError("--num-beams and --batch-size must be at least 1")
        if not 1 <= self.num_return_sequences <= self.num_beams:
            raise ConfigError(f"--num-return-sequences must be between 1 and --num-beams ({self.num_beams})")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}")


@dataclass
class PredictStats:
    """Counts of a generation run: every input document gets a line, some with no keyphrase."""

    documents: int = 0
    empty_inputs: int = 0
    no_keyphrase: int = 0

    def summary(self) -> str:
        """One line for the terminal."""
        return (f"predicted {self.documents} documents ({self.empty_inputs} empty inputs, "
                f"{self.no_keyphrase} without any generated keyphrase)")


def pick_device(device: str) -> str:
    """``auto`` → cuda when available, else cpu; an explicit cuda without a GPU is an error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: no CUDA device is available")
    if not (device == "cpu" or device.startswith("cuda")):
        raise ConfigError(f"--device must be auto, cpu or cuda[:N], not {device!r}")
    return device


def autocast(device: str, precision: str) -> contextlib.AbstractContextManager[Any]:
    """The autocast context of a precision (fp32: none; bf16/fp16: torch.autocast on the device)."""
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.split(":")[0], dtype=dtype)


class BartGenerator:
    """A loaded model + tokenizer that turns documents into ranked keyphrase predictions."""

    def __init__(self, config: BartPredictConfig, *, model: Any = None, tokenizer: Any = None) -> None:
        config.check()
        self.config = config
        self.device = pick_device(config.device)
        quiet_transformers()
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(config.model)
        loaded = model if model is not None else load_model(config.model)
        self.model = loaded.to(self.device).eval()
        saved = BartMeta.load(config.model)
        meta = saved or BartMeta()
        self.sep_id = keyphrase_sep_id(self.tokenizer, meta.keyphrase_sep)
        self.source_length = max_source_tokens(self.model, config.max_source_length or meta.max_source_length)
        self.target_length = config.max_target_length or meta.max_target_length
        if meta.source_sep is not None:  # the separator the model was trained with
            self.src_sep = meta.source_sep
        elif saved is not None:  # trained by an esrank that joined title and text with the sep token
            self.src_sep = legacy_source_separator(self.tokenizer)
        else:
            self.src_sep = source_separator(self.tokenizer)
        self.drop_ids = {int(i) for i in self.tokenizer.all_special_ids if i != self.sep_id}

    def generate(self, docs: Sequence[Document]) -> list[list[Beam]]:
        """The returned beams of each document, best first (an empty input yields no beam)."""
        import torch

        sources = [format_source(d.title, d.text, self.src_sep) for d in docs]
        live = [i for i, s in enumerate(sources) if s.strip()]
        beams: list[list[Beam]] = [[] for _ in docs]
        if not live:
            return beams
        enc = self.tokenizer([sources[i] for i in live], max_length=self.source_length, truncation=True,
                             padding=True, return_tensors="pt").to(self.device)
        cfg = self.model.generation_config
        forced_bos = getattr(cfg, "forced_bos_token_id", None)
        if forced_bos is None:
            forced_bos = getattr(self.model.config, "forced_bos_token_id", None)
        with torch.no_grad(), autocast(self.device, self.config.precision):  # autocast caches casts only here
            out = self.model.generate(
                **enc, num_beams=self.config.num_beams, num_return_sequences=self.config.num_return_sequences,
                max_new_tokens=self.target_length, early_stopping=True, do_sample=False,
                forced_bos_token_id=forced_bos, output_scores=True, return_dict_in_generate=True,
            )
        seqs = out.sequences.tolist()
        scores = out.sequences_scores.tolist() if getattr(out, "sequences_scores", None) is not None else None
        n = self.config.num_return_sequences
        for j, i in enumerate(live):
            for r in range(n):
                row = j * n + r
                chunks = split_ids(seqs[row], self.sep_id, self.drop_ids)
                phrases = [self.tokenizer.decode(c, skip_special_tokens=True) for c in chunks]
                beams[i].append(Beam(phrases, float(scores[row]) if scores is not None else None))
        return beams

    def predict(self, docs: Sequence[Document]) -> list[Prediction]:
        """Ranked, de-duplicated keyphrases (with PRMU categories) of a batch of documents."""
        return [merge_beams(d, b) for d, b in zip(docs, self.generate(docs))]


def predict_bart(docs: Iterable[Document], config: BartPredictConfig, writer: PredictionWriter, *,
                 total: int | None = None, generator: BartGenerator | None = None) -> PredictStats:
    """Generate keyphrases for every document and write one prediction line per document."""
    gen = generator or BartGenerator(config)
    stats = PredictStats()
    with progress.bar(total=total, desc="bart predict", unit="doc") as pbar:
        for batch in chunked(docs, config.batch_size):
            for doc, pred in zip(batch, gen.predict(batch)):
                writer.write(pred)
                stats.documents += 1
                if not (doc.title.strip() or doc.text.strip()):
                    stats.empty_inputs += 1
                if not pred.keyphrases:
                    stats.no_keyphrase += 1
            pbar.update(len(batch))
    return stats
