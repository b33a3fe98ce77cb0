"""BART-KP One2Seq text formats: the source a document becomes, the target its keyphrases become, and the
parsing of generated sequences back into ranked, de-duplicated keyphrases.

Source: ``title<s>text`` as in the BART-KP paper (the tokenizer's bos token, ``<s>`` for BART).
Target: the keyphrases joined by a dedicated separator token (``KEYPHRASE_SEP``, added to the tokenizer):
present keyphrases first, in the order of their first occurrence in title + text, then absent ones in their
original order. Presence and position come from ``esrank.text`` (stemmed, contiguous match).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ...corpus import Document
from ...predictions import Prediction, ScoredPhrase
from ...text import StemmedText, classify_key, normalise_phrase, prepare, stemmed_key

KEYPHRASE_SEP = "<kp_sep>"
"""The token that separates keyphrases in a One2Seq target."""


@dataclass(frozen=True)
class OrderedKeyphrases:
    """A document's keyphrases split into present (in text order) and absent (in original order)."""

    present: list[str]
    absent: list[str]

    @property
    def all(self) -> list[str]:
        """Present keyphrases first, then absent ones: the One2Seq target order."""
        return self.present + self.absent


def format_source(title: str, text: str, sep_token: str) -> str:
    """The encoder input of a document: ``title<sep>text`` (either part alone when the other is empty)."""
    title, text = title.strip(), text.strip()
    if title and text:
        return f"{title}{sep_token}{text}"
    return title or text


def order_keyphrases(doc: Document, prepared: StemmedText | None = None) -> OrderedKeyphrases:
    """Split a document's keyphrases into present ones (by first occurrence) and absent ones (original order)."""
    prepared = prepared or prepare(doc.title, doc.text)
    present: list[tuple[int, int, str]] = []
    absent: list[str] = []
    seen: set[str] = set()
    for i, phrase in enumerate(doc.keyphrases):
        phrase = normalise_phrase(phrase)
        key = stemmed_key(phrase)
        if not key or key in seen:
            continue
        seen.add(key)
        if classify_key(key, prepared) == "P":
            # ``joined`` is the space-padded stem sequence: a character offset orders like a token offset.
            present.append((prepared.joined.index(f" {key} "), i, phrase))
        else:
            absent.append(phrase)
    present.sort()
    return OrderedKeyphrases([p for _, _, p in present], absent)


def format_target(keyphrases: Sequence[str], sep: str = KEYPHRASE_SEP) -> str:
    """The decoder target: keyphrases joined by the separator token (no spaces around it)."""
    return sep.join(normalise_phrase(k) for k in keyphrases if normalise_phrase(k))


def document_target(doc: Document, sep: str = KEYPHRASE_SEP) -> str:
    """The One2Seq target of a document (present keyphrases first, then absent ones)."""
    return format_target(order_keyphrases(doc).all, sep)


def split_target(text: str, sep: str = KEYPHRASE_SEP) -> list[str]:
    """Inverse of ``format_target`` on decoded text: the non-empty, whitespace-normalised phrases."""
    return [p for p in (normalise_phrase(s) for s in text.split(sep)) if p]


def split_ids(ids: Sequence[int], sep_id: int, drop_ids: set[int]) -> list[list[int]]:
    """Token ids of one generated sequence cut at the separator id, with special ids (pad, bos, eos) dropped."""
    chunks: list[list[int]] = [[]]
    for t in ids:
        if t == sep_id:
            chunks.append([])
        elif t not in drop_ids:
            chunks[-1].append(int(t))
    return [c for c in chunks if c]


@dataclass(frozen=True)
class Beam:
    """One returned beam: its phrases in generation order and its (length-normalised log-prob) score."""

    phrases: list[str]
    score: float | None = None


def merge_beams(doc: Document, beams: Sequence[Beam], prepared: StemmedText | None = None) -> Prediction:
    """Ranked keyphrases of a document from its beams (best first), de-duplicated by stemmed form.

    The order is beam order, then generation order within a beam. The score of the phrase at rank r
    (0-based) is ``1 / (r + 1)``, so scores fall strictly with the rank; the best sequence score of
    the beams is kept in the line's ``meta`` as ``beam_score``.
    """
    prepared = prepared or prepare(doc.title, doc.text)
    seen: set[str] = set()
    out: list[ScoredPhrase] = []
    for beam in beams:
        for phrase in beam.phrases:
            phrase = normalise_phrase(phrase)
            key = stemmed_key(phrase)
            if not key or key in seen:
                continue
            seen.add(key)
            out.append(ScoredPhrase(phrase, 1.0 / (len(out) + 1), classify_key(key, prepared)))
    meta = {}
    scores = [b.score for b in beams if b.score is not None]
    if scores:
        meta["beam_score"] = round(max(scores), 6)
    return Prediction(doc.id, out, meta)
