"""Evaluation of thesaurus indexing as the CISMeF paper reports it: mean cut-off rank, P/R at the cut-off,
precision@2 and precision@4, for the system with pairs and the same system run without pairs, both scored
against the same gold ("with / without pairs", the paper's "/" comparison).

A heading is a descriptor alone, or a descriptor/qualifier pair, correct only when both parts match a gold
pair. The run without pairs is the indexer's output with its pair headings removed: pairs change neither
the descriptors' scores nor the cut-off, so this is what the indexer gives without qualifiers. An extra,
relaxed view reduces pairs to their descriptor on both sides (duplicates dropped): it measures descriptor
choice alone and is not one of the paper's figures.
Gold and predicted concepts are compared by id or by label (case and accents ignored); given the
thesaurus, labels and synonyms are resolved to ids first, so a gold id matches a predicted label.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from ..errors import InputError
from ..predictions import json_lines
from ..text import fold_accents, normalise_phrase

if TYPE_CHECKING:
    from .thesaurus import Thesaurus


def concept_key(value: str) -> str:
    """The comparison form of an id or label: accent-folded, casefolded, spaces collapsed."""
    return fold_accents(normalise_phrase(value)).casefold()


@dataclass
class GoldRecord:
    """The reference indexing of one document: descriptors and descriptor/qualifier pairs (ids or labels)."""

    id: str
    descriptors: list[str] = field(default_factory=list)
    pairs: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Heading:
    """One predicted heading: descriptor (id and label) and optional qualifier (id and label)."""

    descriptor: set[str]  # comparison keys (id and label)
    qualifier: set[str] | None = None


def _split_heading(text: str) -> tuple[str, str | None]:
    if "/" in text:
        d, q = text.rsplit("/", 1)
        if d.strip() and q.strip():
            return d.strip(), q.strip()
    return text.strip(), None


def read_gold(path: str | Path) -> Iterator[GoldRecord]:
    """Stream gold records: {"id", "descriptors": [...], "pairs": [[D, Q], ...]} or {"id", "keyphrases": ["D", "D/Q"]}."""
    path = Path(path)
    for lineno, rec in json_lines(path, "gold record"):
        descs, pairs = rec.get("descriptors", []), rec.get("pairs", [])
        kps: Any = rec.get("keyphrases", rec.get("keywords", []))
        ok = (isinstance(descs, list) and all(isinstance(d, str) for d in descs)
              and isinstance(pairs, list) and isinstance(kps, list) and all(isinstance(k, str) for k in kps)
              and all(isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in pairs))
        if not ok:
            raise InputError("'descriptors' and 'keyphrases' must be lists of strings and 'pairs' a list of "
                             "[descriptor, qualifier] lists", source=str(path), line=lineno)
        g = GoldRecord(str(rec["id"]), list(descs), [(p[0], p[1]) for p in pairs])
        for k in kps or ():
            d, q = _split_heading(k)
            if q is None:
                g.descriptors.append(d)
            else:
                g.pairs.append((d, q))
        yield g


class Canon:
    """Comparison keys of descriptors and qualifiers; with a thesaurus, labels and synonyms resolve to ids."""

    def __init__(self, thesaurus: "Thesaurus | None" = None) -> None:
        self._d: dict[str, str] = {}
        self._q: dict[str, str] = {}
        if thesaurus is not None:
            for table, concepts in ((self._d, thesaurus.descriptors.values()),
                                    (self._q, thesaurus.qualifiers.values())):
                for c in concepts:
                    for name in (c.id, c.label, *c.synonyms):
                        table.setdefault(concept_key(name), concept_key(c.id))

    def descriptor(self, *values: Any) -> set[str]:
        """Keys of a descriptor given by id and/or label."""
        keys = (concept_key(v) for v in values if isinstance(v, str) and v.strip())
        return {self._d.get(k, k) for k in keys}

    def qualifier(self, *values: Any) -> set[str]:
        """Keys of a qualifier given by id and/or label."""
        keys = (concept_key(v) for v in values if isinstance(v, str) and v.strip())
        return {self._q.get(k, k) for k in keys}


def _raw_headings(path: Path, canon: Canon) -> Iterator[list[Heading]]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            rec = json.loads(line)
            out: list[Heading] = []
            for item in rec.get("keyphrases", rec.get("keywords", [])):
                if isinstance(item, str):
                    d, q = _split_heading(item)
                    out.append(Heading(canon.descriptor(d), canon.qualifier(q) if q else None))
                    continue
                d, q = _split_heading(item["phrase"])
                if item.get("descriptor_id") and not item.get("qualifier_id"):
                    d, q = item["phrase"], None  # a descriptor label that holds a '/'
                dk = canon.descriptor(d, item.get("descriptor_id"))
                has_q = q is not None or item.get("qualifier_id")
                qk = canon.qualifier(q, item.get("qualifier_id")) if has_q else None
                out.append(Heading(dk, qk))
            yield out


def read_vocab_predictions(path: str | Path, canon: Canon | None = None
                           ) -> Iterator[tuple[str, list[Heading], int | None]]:
    """Stream (id, headings best first, cut-off or None) from an indexer output or any predictions file."""
    from ..predictions import read_predictions

    path = Path(path)
    # read_predictions validates each line; the raw pass adds the descriptor/qualifier ids it does not keep
    for pred, heads in zip(read_predictions(path), _raw_headings(path, canon or Canon())):
        cutoff = pred.meta.get("cutoff")
        yield pred.id, heads, cutoff if isinstance(cutoff, int) else None


def _matches(h: Heading, d: set[str], q: set[str] | None) -> bool:
    if not d & h.descriptor:
        return False
    if q is None:
        return h.qualifier is None
    return h.qualifier is not None and bool(q & h.qualifier)


@dataclass
class Scores:
    """Mean cut-off rank, precision@2, precision@4 and P/R/F1 at the cut-off, macro-averaged over documents."""

    mean_cutoff: float = 0.0
    p_at_2: float = 0.0
    p_at_4: float = 0.0
    precision: float = 0.0
    recall: float = 0.0
    f1: float = 0.0


@dataclass
class VocabEvaluation:
    """Scores with pairs, without pairs (same gold) and relaxed to descriptors, with the document counts."""

    with_pairs: Scores
    without_pairs: Scores
    relaxed_descriptors: Scores
    n_docs: int
    missing_predictions: int

    ROWS = (("with pairs", "with_pairs"), ("without pairs", "without_pairs"),
            ("relaxed: pairs as descriptors", "relaxed_descriptors"))

    def slash(self) -> str:
        """The paper's "/" line: each figure with pairs / without pairs."""
        w, wo = self.with_pairs, self.without_pairs
        cells = [f"{name} {getattr(w, key):.{d}f}/{getattr(wo, key):.{d}f}"
                 for name, key, d in (("cut-off", "mean_cutoff", 2), ("P", "precision", 3), ("R", "recall", 3),
                                      ("P@2", "p_at_2", 3), ("P@4", "p_at_4", 3))]
        return "with / without pairs: " + ", ".join(cells)

    def table(self) -> str:
        """A small text table, the "/" line and the document counts."""
        rows = [f"{'run':<30} cut-off  P       R       F1      P@2     P@4"]
        for name, key in self.ROWS:
            s = getattr(self, key)
            rows.append(f"{name:<30} {s.mean_cutoff:<7.2f}  {s.precision:.4f}  {s.recall:.4f}  {s.f1:.4f}  "
                        f"{s.p_at_2:.4f}  {s.p_at_4:.4f}")
        rows.append(self.slash())
        rows.append(f"documents: {self.n_docs} (without prediction: {self.missing_predictions}); P, R and F1 at "
                    "the cut-off, macro-averaged; the run without pairs is scored against the same gold")
        return "\n".join(rows)


def _hits(pred: list[Heading], gold: list[tuple[set[str], set[str] | None]]) -> list[bool]:
    left = list(gold)
    out = []
    for h in pred:
        hit = next((g for g in left if _matches(h, *g)), None)
        if hit is not None:
            left.remove(hit)
        out.append(hit is not None)
    return out


def _doc_scores(pred: list[Heading], gold: list[tuple[set[str], set[str] | None]], cutoff: int) -> tuple[float, ...]:
    hits = _hits(pred, gold)
    p2 = sum(hits[:2]) / 2
    p4 = sum(hits[:4]) / 4
    kept = sum(hits[:cutoff])
    p = kept / cutoff if cutoff else 0.0
    r = kept / len(gold) if gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return float(cutoff), p2, p4, p, r, f


def _reduce(pred: list[Heading]) -> tuple[list[Heading], dict[int, int]]:
    out: list[Heading] = []
    index: dict[int, int] = {}  # position in pred -> position in reduced list
    for i, h in enumerate(pred):
        if not any(h.descriptor & o.descriptor for o in out):
            out.append(Heading(h.descriptor))
        index[i] = len(out)
    return out, index


def evaluate_indexing(gold_path: str | Path, pred_path: str | Path,
                      thesaurus: "Thesaurus | None" = None) -> VocabEvaluation:
    """Score an indexer output against gold records (documents without prediction score zero)."""
    canon = Canon(thesaurus)
    preds: dict[str, tuple[list[Heading], int | None]] = {}
    for pid, heads, cutoff in read_vocab_predictions(pred_path, canon):
        preds[pid] = (heads, cutoff)
    sums_h, sums_n, sums_d = [0.0] * 6, [0.0] * 6, [0.0] * 6
    n = missing = 0
    for g in read_gold(gold_path):
        n += 1
        heads, cutoff = preds.get(g.id, ([], 0))
        if g.id not in preds:
            missing += 1
        cut = len(heads) if cutoff is None else min(cutoff, len(heads))
        gold_h: list[tuple[set[str], set[str] | None]] = [(canon.descriptor(d), None) for d in g.descriptors]
        gold_h += [(canon.descriptor(d), canon.qualifier(q)) for d, q in g.pairs]
        gold_d_keys = dict.fromkeys(frozenset(canon.descriptor(d)) for d in [*g.descriptors, *(p[0] for p in g.pairs)])
        gold_d: list[tuple[set[str], set[str] | None]] = [(set(d), None) for d in gold_d_keys]
        reduced, index = _reduce(heads)
        no_pairs = [h for h in heads if h.qualifier is None]
        no_pairs_cut = sum(1 for h in heads[:cut] if h.qualifier is None)
        for acc, vals in ((sums_h, _doc_scores(heads, gold_h, cut)),
                          (sums_n, _doc_scores(no_pairs, gold_h, no_pairs_cut)),
                          (sums_d, _doc_scores(reduced, gold_d, index.get(cut - 1, 0) if cut else 0))):
            for i, v in enumerate(vals):
                acc[i] += v
    if n == 0:
        raise InputError("no gold records", source=str(gold_path))
    return VocabEvaluation(Scores(*(v / n for v in sums_h)), Scores(*(v / n for v in sums_n)),
                           Scores(*(v / n for v in sums_d)), n, missing)
