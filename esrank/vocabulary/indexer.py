"""The thesaurus indexer: match → count → share hierarchy → tf·idf → check tags → pairs → cut-off.

Output is a ``Prediction`` per document whose keyphrases are headings ("descriptor" or
"descriptor/qualifier" labels), best first, with ids, the major flag and the matched spans as
evidence; ``cutoff`` (line level) says how many headings the adaptive cut-off kept.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from ..corpus import Document, Fields, ReadStats, RejectSink, read_documents
from ..errors import ConfigError
from ..predictions import Prediction, PredictionWriter, ScoredPhrase
from ..progress import track
from .automaton import Match, Matcher
from .collection import DocumentFrequencies, PairHistory
from .scoring import (Pairs, Shared, adaptive_cutoff, apply_check_tags, form_pairs, is_major, occurrences,
                      promoted_check_tags, score_pairs, share_hierarchy, tfidf, weighted_counts)


@dataclass
class IndexConfig:
    """Settings of the indexer (field weights, BM25 constants, cut-off bounds, major ratio, use of the history).

    With a pair history, ``history_filter`` keeps only pairs assigned before, and ``history_prior`` (0: off)
    raises a pair's score by (1 + prior · P(qualifier | descriptor)).
    """

    field_weights: dict[str, float] = field(default_factory=lambda: {"title": 2.0, "text": 1.0})
    k1: float = 1.2
    b: float = 0.75
    min_terms: int = 1
    max_terms: int = 10
    major_ratio: float = 0.5
    history_filter: bool = True
    history_prior: float = 0.0
    max_output: int = 50  # headings written per document, kept ones first

    def __post_init__(self) -> None:
        if not self.field_weights:
            raise ConfigError("at least one field to index is needed")
        if any(w < 0 for w in self.field_weights.values()):
            raise ConfigError("field weights must not be negative")
        if not 1 <= self.min_terms <= self.max_terms:
            raise ConfigError(f"need 1 <= min terms ({self.min_terms}) <= max terms ({self.max_terms})")
        if self.history_prior < 0:
            raise ConfigError(f"the history prior must not be negative, not {self.history_prior}")
        if not 0.0 < self.major_ratio <= 1.0:
            raise ConfigError(f"the major ratio must be in (0, 1], not {self.major_ratio}")

    @staticmethod
    def parse_weights(spec: str) -> dict[str, float]:
        """Field weights from "title=2,text=1,headings=1.5"."""
        out: dict[str, float] = {}
        for part in spec.split(","):
            name, sep, value = part.partition("=")
            try:
                out[name.strip()] = float(value) if sep else 1.0
            except ValueError:
                raise ConfigError(f"bad field weight {part!r}; use NAME=NUMBER, e.g. title=2,text=1") from None
            if not name.strip():
                raise ConfigError(f"bad field weight {part!r}: no field name")
        return out


@dataclass
class IndexTerm(ScoredPhrase):
    """An indexing term: a descriptor, or a descriptor/qualifier pair, with its evidence."""

    descriptor_id: str = ""
    qualifier_id: str | None = None
    major: bool = False
    evidence: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """JSON form: the prediction fields plus ids, major flag and evidence spans."""
        d = super().to_json()
        d["descriptor_id"] = self.descriptor_id
        if self.qualifier_id is not None:
            d["qualifier_id"] = self.qualifier_id
        d["major"] = self.major
        d["evidence"] = self.evidence
        return d


def _span(m: Match, via: str | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {"field": m.field, "sentence": m.sentence, "start": m.char_start, "end": m.char_end,
                         "text": m.text}
    if m.kind == "Q":
        d["qualifier"] = m.concept
    if via:
        d["via"] = via
    return d


@dataclass
class Scored:
    """The scored state of one document before the cut-off."""

    matches: list[Match]
    shared: Shared
    scores: dict[str, float]
    pairs: Pairs
    pair_scores: dict[tuple[str, str], float]
    always_kept: set[str] = field(default_factory=set)  # check tags seen more than once: exempt from the cut-off


class Indexer:
    """Indexes documents with a thesaurus; document frequencies and pair history are optional."""

    def __init__(self, matcher: Matcher, config: IndexConfig | None = None,
                 frequencies: DocumentFrequencies | None = None, history: PairHistory | None = None) -> None:
        self.matcher = matcher
        self.config = config or IndexConfig()
        self.frequencies = frequencies
        self.history = history

    def score(self, document: Document) -> "Scored":
        """Steps 1-5 for one document: matches, descriptor scores and scored pairs."""
        cfg, th = self.config, self.matcher.thesaurus
        fts = self.matcher.fields(document, list(cfg.field_weights))
        matches: list[Match] = []
        rule_pairs: list[tuple[str, str, Match]] = []
        for ft in fts:
            got = self.matcher.match_field(ft)
            matches += got
            rule_pairs += self.matcher.rule_pairs(ft, got)
        counts = weighted_counts(matches, cfg.field_weights)
        shared = share_hierarchy(counts, th)
        fr, hist = self.frequencies, self.history
        doc_len = sum(len(ft.tokens) for ft in fts)
        n_docs, avg_len = (fr.n_docs, fr.avg_len) if fr else (0, 0.0)
        weighted = tfidf(shared.counts, doc_len, n_docs=n_docs, df=fr.counts if fr else None, avg_len=avg_len,
                         k1=cfg.k1, b=cfg.b)
        seen = occurrences(matches)
        scores = apply_check_tags(weighted, seen, th)
        pairs = form_pairs(matches, shared.counts, th, cfg.field_weights, shared_to=shared.shared_to,
                           rule_pairs=rule_pairs, history=hist.pairs if hist else None,
                           history_filter=hist is not None and cfg.history_filter)
        probs = {p: hist.probability(*p) for p in pairs.pairs} if hist and cfg.history_prior else None
        pair_df = {p: fr.pair_df(*p) for p in pairs.pairs} if fr else None
        pair_scores = score_pairs(pairs.pairs, doc_len, n_docs=n_docs, df=pair_df, avg_len=avg_len, k1=cfg.k1, b=cfg.b,
                                  history_prob=probs, prior_weight=cfg.history_prior)
        return Scored(matches, shared, scores, pairs, pair_scores, promoted_check_tags(weighted, seen, th))

    def index(self, document: Document) -> Prediction:
        """The ranked headings of one document (step 6: cut-off and major/minor), with evidence."""
        cfg, th = self.config, self.matcher.thesaurus
        sc = self.score(document)
        scores = sc.scores
        if not scores:
            return Prediction(document.id, [], {"cutoff": 0, "rejected_pairs": sc.pairs.rejected})
        ranked = sorted(scores, key=lambda d: (-scores[d], d))
        rest = [d for d in ranked if d not in sc.always_kept]  # the cut-off ranks the others
        kept = set(rest[:adaptive_cutoff([scores[d] for d in rest], cfg.min_terms, cfg.max_terms)]) | sc.always_kept
        top = scores[ranked[0]]
        evidence: dict[str, list[dict[str, Any]]] = {}
        for m in sc.matches:
            if m.kind == "D":
                for target in ([m.concept] if m.concept in scores else sc.shared.shared_to.get(m.concept, [])):
                    evidence.setdefault(target, []).append(_span(m, None if target == m.concept else m.concept))
        items: list[tuple[bool, IndexTerm]] = []
        for d in ranked:
            major = d in kept and is_major(scores[d], top, cfg.major_ratio)
            items.append((d in kept, IndexTerm(th.descriptors[d].label, scores[d], None, d, None, major,
                                               evidence.get(d, []))))
        for (d, q), s in sc.pair_scores.items():
            ev = sc.pairs.pairs[(d, q)]
            major = d in kept and is_major(s, top, cfg.major_ratio)
            items.append((d in kept, IndexTerm(f"{th.descriptors[d].label}/{th.qualifiers[q].label}", s, None, d, q,
                                               major, [_span(m, via) for m, via in zip(ev.matches, ev.sources)])))
        # kept headings first, then by score; on a tie, check tags after the other descriptors
        items.sort(key=lambda it: (not it[0], -(it[1].score or 0.0), th.descriptors[it[1].descriptor_id].check_tag,
                                   it[1].phrase))
        n_kept = sum(1 for k, _ in items if k)
        heads: list[ScoredPhrase] = [h for _, h in items[:max(cfg.max_output, n_kept)]]
        return Prediction(document.id, heads, {"cutoff": n_kept, "rejected_pairs": sc.pairs.rejected})

    def index_all(self, documents: Iterable[Document]) -> Iterator[Prediction]:
        """Index documents one by one (with a progress bar)."""
        for doc in track(documents, desc="indexing"):
            yield self.index(doc)


@dataclass
class IndexRun:
    """Summary of ``index_file``: documents read/written and headings assigned."""

    stats: ReadStats
    written: int = 0
    headings: int = 0
    without_terms: int = 0
    rejected_pairs: int = 0


def index_file(data: str | Path, out: str | Path, indexer: Indexer, *, fields: Fields | None = None,
               fmt: str | None = None, on_error: str = "fail", rejects: str | Path | None = None) -> IndexRun:
    """Index every document of a corpus file and write the predictions JSONL."""
    stats = ReadStats()
    run = IndexRun(stats)
    with RejectSink(rejects) as sink, PredictionWriter(out) as writer:
        docs = read_documents(data, fields=fields, fmt=fmt, on_error=on_error,  # type: ignore[arg-type]
                              rejects=sink, stats=stats)
        for pred in indexer.index_all(docs):
            writer.write(pred)
            run.written += 1
            run.headings += pred.meta["cutoff"]
            run.without_terms += 0 if pred.keyphrases else 1
            run.rejected_pairs += pred.meta.get("rejected_pairs", 0)
    return run


def build_indexer(thesaurus: str | Path, *, language: str | None = None, config: IndexConfig | None = None,
                  df_path: str | Path | None = None, collection: str | Path | None = None,
                  history_path: str | Path | None = None, fields: Fields | None = None,
                  field_names: Sequence[str] | None = None) -> Indexer:
    """An indexer from files: thesaurus, and optionally document frequencies (file or corpus) and pair history."""
    from .thesaurus import load_thesaurus

    matcher = Matcher(load_thesaurus(thesaurus, language))
    config = config or IndexConfig()
    freqs = None
    if df_path is not None and collection is not None:
        raise ConfigError("give document frequencies either as a file or as a collection, not both")
    if df_path is not None:
        freqs = DocumentFrequencies.load(df_path)
    elif collection is not None:
        docs = read_documents(collection, fields=fields)
        freqs = DocumentFrequencies.from_documents(docs, matcher, field_names or list(config.field_weights))
    history = None
    if history_path is not None:
        p = Path(history_path)
        history = PairHistory.load(p) if p.suffix.lower() == ".json" else PairHistory.from_gold(p, matcher.thesaurus)
    return Indexer(matcher, config, freqs, history)
