"""BART-KP One2Seq baseline: fine-tune a seq2seq model to generate all keyphrases of a document as one
separated sequence, and generate ranked keyphrases (same JSONL as ``esrank rank``) with beam search.

The parts: ``data`` (source/target formats, parsing of generations), ``model`` (loading),
``train`` (Seq2SeqTrainer fine-tuning), ``predict`` (beam search → predictions).
"""
from __future__ import annotations

from .data import KEYPHRASE_SEP, Beam, OrderedKeyphrases, document_target, format_source, \
    format_target, merge_beams, order_keyphrases, split_ids, split_target
from .model import BartMeta, load_model, load_tokenizer
from .predict import BartGenerator, BartPredictConfig, PredictStats, predict_bart
from .train import BartTrainConfig, BartTrainResult, encode_documents, train_bart

__all__ = [
    "KEYPHRASE_SEP", "Beam", "OrderedKeyphrases", "document_target", "format_source", "format_target",
    "merge_beams", "order_keyphrases", "split_ids", "split_target", "BartMeta", "load_model", "load_tokenizer",
    "BartGenerator", "BartPredictConfig", "PredictStats", "predict_bart", "BartTrainConfig", "BartTrainResult",
    "encode_documents", "train_bart",
]
