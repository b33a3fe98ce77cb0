"""BART-KP One2Seq baseline: fine-tune a seq2seq model to generate all keyphrases of a document as one
separated sequence, and generate ranked keyphrases (same JSONL as ``esrank rank``) with beam search.

The parts: ``bart_data`` (source/target formats, parsing of generations), ``bart_model`` (loading),
``bart_train`` (Seq2SeqTrainer fine-tuning), ``bart_predict`` (beam search → predictions).
"""
from __future__ import annotations

from .bart_data import KEYPHRASE_SEP, Beam, OrderedKeyphrases, document_target, format_source, \
    format_target, merge_beams, order_keyphrases, split_ids, split_target
from .bart_model import BartMeta, load_model, load_tokenizer
from .bart_predict import BartGenerator, BartPredictConfig, PredictStats, predict_bart
from .bart_train import BartTrainConfig, BartTrainResult, encode_documents, train_bart

__all__ = [
    "KEYPHRASE_SEP", "Beam", "OrderedKeyphrases", "document_target", "format_source", "format_target",
    "merge_beams", "order_keyphrases", "split_ids", "split_target", "BartMeta", "load_model", "load_tokenizer",
    "BartGenerator", "BartPredictConfig", "PredictStats", "predict_bart", "BartTrainConfig", "BartTrainResult",
    "encode_documents", "train_bart",
]
