"""PRMU evaluation: F1@Q (present), R@Q (reordered, mixed, unseen, all absent) and the usual P/R/F1@k.

Per document, gold and predicted keyphrases are compared by stemmed form (esrank.text.stemmed_key);
predictions are de-duplicated by stemmed form with their rank kept. For each PRMU class c with
Q_c gold keyphrases (documents with Q_c = 0 are left out of class c), the first Q_c predictions
of class c are taken: F1 for Present, recall for Reordered, Mixed, Unseen and for all absent
keyphrases pooled (Abs). The conventions other toolkits report are also computed — P/R/F1 at 5,
10, O (= number of gold) and M (= all predictions) — for the present, absent and all scopes.
Precision at k divides by the number of predictions actually taken, min(k, available), as in
Chan et al. (2019); an empty prediction list has precision 0. Figures are macro-averages over
documents and always come with n, the number of documents counted.
"""
from __future__ import annotations

import math
import warnings
from itertools import accumulate
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..corpus import Document
from ..errors import ConfigError
from ..text import PRMU, StemmedText, classify_key, prepare, stemmed_key

MAIN_METRICS = ("P_F1@Q", "R_R@Q", "M_R@Q", "U_R@Q", "Abs_R@Q")
SCOPES = ("present", "absent", "all")
CUTOFFS = ("5", "10", "O", "M")

_key_cache: dict[str, str] = {}


def cached_key(phrase: str) -> str:
    """stemmed_key with a per-phrase cache (predictions repeat the same phrases often)."""
    k = _key_cache.get(phrase)
    if k is None:
        k = stemmed_key(phrase)
        if len(_key_cache) < 1_000_000:
            _key_cache[phrase] = k
    return k


def _unique_keys(phrases: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for p in phrases:
        k = cached_key(p)
        if k and k not in seen:
            seen.add(k)
            out.append(k)
    return out


def _prf(matches: int, n_pred: int, n_gold: int) -> tuple[float, float, float]:
    p = matches / n_pred if n_pred else 0.0
    r = matches / n_gold if n_gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def score_document(gold: Sequence[str], predicted: Sequence[str], doc: StemmedText) -> dict[str, float]:
    """All metrics defined for one document (a metric whose gold set is empty is left out)."""
    gold_cls: dict[str, str] = {k: classify_key(k, doc) for k in _unique_keys(gold)}
    pkeys = _unique_keys(predicted)
    pcls = [gold_cls.get(k) or classify_key(k, doc) for k in pkeys]  # a key's class depends on the key only
    hit = [k in gold_cls for k in pkeys]
    q = {c: 0 for c in PRMU}
    for c in gold_cls.values():
        q[c] += 1
    out: dict[str, float] = {}
    for c in PRMU:
        if not q[c]:
            continue
        top = [h for h, pc in zip(hit, pcls) if pc == c][: q[c]]
        if c == "P":
            out["P_P@Q"], out["P_R@Q"], out["P_F1@Q"] = _prf(sum(top), len(top), q[c])
        else:
            out[f"{c}_R@Q"] = sum(top) / q[c]
    n_absent = q["R"] + q["M"] + q["U"]
    present_hits = [h for h, pc in zip(hit, pcls) if pc == "P"]
    absent_hits = [h for h, pc in zip(hit, pcls) if pc != "P"]
    if n_absent:
        out["Abs_R@Q"] = sum(absent_hits[:n_absent]) / n_absent
    for scope, n_gold, hits in (("present", q["P"], present_hits), ("absent", n_absent, absent_hits),
                                ("all", len(gold_cls), hit)):
        if not n_gold:
            continue
        n = len(hits)
        cum = [0, *accumulate(hits)]  # cum[j] = correct among the first j predictions
        for cut, k in (("5", 5), ("10", 10), ("O", n_gold), ("M", n)):
            taken = k if k < n else n
            m = cum[taken]
            p = m / taken if taken else 0.0
            r = m / n_gold
            out[f"{scope}_P@{cut}"], out[f"{scope}_R@{cut}"] = p, r
            out[f"{scope}_F1@{cut}"] = 2 * p * r / (p + r) if m else 0.0
    return out


@dataclass
class SystemScores:
    """Per-document metric values of one system."""

    name: str
    rows: dict[str, dict[str, float]] = field(default_factory=dict)  # doc id → {metric: value}
    missing: int = 0  # gold documents the system predicted nothing for (scored as empty lists)
    unknown: int = 0  # predicted ids that are not in the gold file (ignored)
    _by_metric: dict[str, dict[str, float]] | None = field(default=None, repr=False)

    @property
    def per_doc(self) -> dict[str, dict[str, float]]:
        """metric → {doc id: value} (built once, on first use)."""
        if self._by_metric is None:
            by: dict[str, dict[str, float]] = {}
            for doc_id, row in self.rows.items():
                for m, v in row.items():
                    by.setdefault(m, {})[doc_id] = v
            self._by_metric = by
        return self._by_metric

    def mean(self, metric: str, ids: Iterable[str] | None = None) -> tuple[float, int]:
        """Macro-average of a metric over documents (optionally a subset of ids) and n."""
        vals = self.per_doc.get(metric, {})
        xs = [vals[i] for i in ids if i in vals] if ids is not None else list(vals.values())
        return (float(np.mean(xs)) if xs else math.nan), len(xs)


@dataclass
class EvalResult:
    """Scores of every system, and the documents of each group (overall and per dataset/domain)."""

    systems: dict[str, SystemScores]
    groups: dict[str, list[str]]
    strict: bool = False

    def metrics(self) -> list[str]:
        """Every metric name present, main metrics first."""
        names: set[str] = set()
        for s in self.systems.values():
            names.update(s.per_doc)
        rest = sorted(n for n in names if n not in MAIN_METRICS)
        return [m for m in MAIN_METRICS if m in names] + rest

    def table(self, metrics: Sequence[str] | None = None) -> list[dict[str, object]]:
        """Rows (group, system, metric, value, n) for every group, system and metric."""
        rows: list[dict[str, object]] = []
        for group, ids in self.groups.items():
            for name, s in self.systems.items():
                for m in metrics or self.metrics():
                    v, n = s.mean(m, None if group == "all" else ids)
                    rows.append({"group": group, "system": name, "metric": m, "value": v, "n": n})
        return rows


def _group_key(doc: Document) -> str | None:
    for k in ("dataset", "domain"):
        v = doc.meta.get(k)
        if isinstance(v, str) and v:
            return v
    return None


def evaluate(gold_docs: Iterable[Document], systems: Mapping[str, Mapping[str, Sequence[str]]],
             *, strict: bool = False) -> EvalResult:
    """Score each system's predictions (doc id → ranked phrases) against the gold documents."""
    scores = {name: SystemScores(name) for name in systems}
    groups: dict[str, list[str]] = {"all": []}
    gold_ids: set[str] = set()
    for doc in gold_docs:
        gold_ids.add(doc.id)
        groups["all"].append(doc.id)
        g = _group_key(doc)
        if g is not None:
            groups.setdefault(g, []).append(doc.id)
        prepared = prepare(doc.title, doc.text, strict=strict)
        for name, preds in systems.items():
            s = scores[name]
            phrases = preds.get(doc.id)
            if phrases is None:
                s.missing += 1
                phrases = ()
            s.rows[doc.id] = score_document(doc.keyphrases, phrases, prepared)
    for name, preds in systems.items():
        scores[name].unknown = sum(1 for i in preds if i not in gold_ids)
    if len(groups) == 2:  # a single dataset/domain: the overall group says it all
        groups = {"all": groups["all"]}
    return EvalResult(scores, groups, strict)


@dataclass
class Significance:
    """Paired tests of system B against system A on one metric."""

    metric: str
    a: str
    b: str
    n: int
    mean_a: float
    mean_b: float
    p_randomization: float
    p_wilcoxon: float
    p_ttest: float

    def marker(self, alpha: float = 0.05) -> str:
        """'†' when the randomization test rejects equality at alpha."""
        return "†" if self.p_randomization < alpha else ""


def _mean_difference(x: np.ndarray, y: np.ndarray, axis: int) -> np.ndarray:
    return np.mean(x - y, axis=axis)


def paired_test(result: EvalResult, metric: str, a: str, b: str, *, rounds: int = 10_000,
                seed: int = 13) -> Significance:
    """Paired randomization (sign-flip permutation test), Wilcoxon signed-rank and paired t-test (scipy.stats)."""
    from scipy import stats

    if rounds < 1:
        raise ConfigError(f"--rounds must be at least 1, got {rounds}")
    va, vb = result.systems[a].per_doc.get(metric, {}), result.systems[b].per_doc.get(metric, {})
    ids = [i for i in va if i in vb]
    xa = np.array([va[i] for i in ids], dtype=float)
    xb = np.array([vb[i] for i in ids], dtype=float)
    d = xb - xa
    n = len(ids)
    if n == 0:
        return Significance(metric, a, b, 0, math.nan, math.nan, math.nan, math.nan, math.nan)
    if np.all(d == 0) or n == 1:  # one document: both sign flips give the same |mean|
        p_rand = p_w = p_t = 1.0
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # scipy warns on nearly identical samples
            p_rand = float(stats.permutation_test(
                (xb, xa), _mean_difference, permutation_type="samples", n_resamples=rounds,
                alternative="two-sided", vectorized=True, rng=np.random.default_rng(seed)).pvalue)
            p_w = float(stats.wilcoxon(xa, xb, zero_method="wilcox").pvalue)
            if np.ptp(d) == 0:  # every document moves by the same amount: no doubt about the sign
                p_t = 0.0
            else:
                p_t = float(stats.ttest_rel(xb, xa).pvalue)
    return Significance(metric, a, b, n, float(xa.mean()), float(xb.mean()), p_rand, p_w, p_t)


def significance_table(result: EvalResult, baseline: str, metrics: Sequence[str] = MAIN_METRICS,
                       **kw: object) -> list[Significance]:
    """Every other system against the baseline system, on each metric."""
    out = []
    for name in result.systems:
        if name == baseline:
            continue
        for m in metrics:
            out.append(paired_test(result, m, baseline, name, **kw))  # type: ignore[arg-type]
    return out
