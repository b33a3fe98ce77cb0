"""Neighbour-aware scores: the bi-encoder's cosine combined with the retrieval evidence.

Two forms, both fitted at training time on held-out validation documents (not trained on) and stored in the
model card (``esrank_card.json``, key ``"mix"``):

* the **model** (``MixModel``, used whenever the card has one): a linear scorer over the candidate features of
  ``esrank.ranking.features`` (cosine, neighbour vote, neighbour count and rank, the keyphrase's frequency in the
  index, how well the neighbours fit the document, word overlap, title, position...), one for the candidates
  present in the document and one for the absent ones. Each is trained on the validation documents' candidate
  pools with a listwise loss (ListNet: a softmax over each document's candidates of the class, the gold ones
  its target — the evaluation ranks candidates within a document and a class, so that is what is learned), then
  calibrated (Platt scaling: a logistic regression on the scorer's output) so that a score is the candidate's
  probability of being gold and present and absent candidates interleave on one scale;
* the **linear weight**: score = w · cosine + (1 − w) · vote / max(vote in the pool), where a candidate's vote is
  the summed BM25 score of the neighbours carrying it, w chosen on a grid maximising the mean of present F1@Q and
  absent R@Q. It serves ``--mix-weight W``, a model directory without a fitted model (``DEFAULT_WEIGHT``), and a
  backend that cannot give keyphrase frequencies.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from ..corpus import Document
from ..errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

    from ..text import StemmedText

    from ..retrieval.base import Backend
    from .candidates import CandidatePool
    from .ranker import Ranker

DEFAULT_WEIGHT = 0.5
L2 = 1.0  # ridge penalty of the mix model on standardised features
GRID = tuple(round(i * 0.05, 2) for i in range(21))  # 0, 0.05, ..., 1
VALIDATION_SHARE = 0.1
VALIDATION_MAX = 2000
VALIDATION_MIN = 20  # unless that is more than a fifth of the documents
OBJECTIVE = "mean of P_F1@Q and Abs_R@Q"
CARD_FILE = "esrank_card.json"  # = esrank.ranking.training.CARD_FILE (training imports torch and trainers)

# (gold phrases, ranked predicted phrases, the document's esrank.text.prepare form) → metrics incl. P_F1@Q, Abs_R@Q:
# esrank.evaluation.prmu.score_document, passed in by the caller (evaluation sits above ranking in the layers)
DocumentMetrics = Callable[[Sequence[str], Sequence[str], Any], Mapping[str, float]]


def mix_scores(cosines: Sequence[float], votes: Sequence[float], weight: float) -> list[float]:
    """w·cosine + (1−w)·vote/max(vote) for the candidates of one pool (a pool without votes: the vote part is 0)."""
    if len(cosines) != len(votes):
        raise ValueError(f"{len(cosines)} cosines but {len(votes)} votes")
    top = max(votes, default=0.0)
    if top <= 0:
        return [weight * c for c in cosines]
    return [weight * c + (1.0 - weight) * v / top for c, v in zip(cosines, votes)]


@dataclass
class ClassModel:
    """A logistic regression over standardised features: z = Σ coef · (x − mean) / scale + bias."""

    mean: list[float]
    scale: list[float]
    coef: list[float]
    bias: float

    def logits(self, x: "np.ndarray") -> "np.ndarray":
        """Log-odds of each row of ``x`` (columns as fitted)."""
        import numpy as np

        return ((x - np.asarray(self.mean)) / np.asarray(self.scale)) @ np.asarray(self.coef) + self.bias


@dataclass
class MixModel:
    """The fitted neighbour-aware scorer: one ``ClassModel`` for present and one for absent candidates, over the
    named features (``esrank.ranking.features.FEATURES``)."""

    features: list[str]
    present: ClassModel
    absent: ClassModel
    l2: float = L2

    @property
    def needs_frequencies(self) -> bool:
        """Whether the model reads the index's keyphrase frequencies."""
        from .features import FREQUENCY_FEATURES

        return any(f in FREQUENCY_FEATURES for f in self.features)

    @property
    def needs_profiles(self) -> bool:
        """Whether the model reads keyphrase profiles (``esrank.ranking.profiles``)."""
        from .features import PROFILE_FEATURES

        return any(f in PROFILE_FEATURES for f in self.features)

    def usable(self, pool: "CandidatePool") -> bool:
        """Whether ``pool`` carries what the model reads (keyphrase frequencies, profiles)."""
        return (bool(pool.index_documents) or not self.needs_frequencies) and (pool.profiled or
                                                                             not self.needs_profiles)

    def scores(self, doc: Document, pool: "CandidatePool", cosines: Sequence[float],
               prepared: "StemmedText | None" = None) -> list[float]:
        """Each candidate's probability of being a gold keyphrase of ``doc``, in pool order (``prepared``: the
        document's ``esrank.text.prepare`` form, when the caller has it)."""
        import numpy as np

        from .features import candidate_features

        x, present = candidate_features(doc, pool, cosines, prepared)
        x = x[:, self._columns]
        z = np.empty(len(x))
        if present.any():
            z[present] = self.present.logits(x[present])
        if (~present).any():
            z[~present] = self.absent.logits(x[~present])
        return (1.0 / (1.0 + np.exp(-z))).tolist()

    @functools.cached_property
    def _columns(self) -> list[int]:
        """The model's features as columns of ``candidate_features``."""
        from .features import FEATURES

        return [FEATURES.index(f) for f in self.features]

    def to_json(self) -> dict[str, Any]:
        """The card's "mix" → "model" entry."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "MixModel":
        """Read a card's "model" entry (ValueError when its features are unknown to this esrank)."""
        from .features import FEATURES

        features = [str(f) for f in data["features"]]
        unknown = [f for f in features if f not in FEATURES]
        if unknown:
            raise ValueError(f"unknown features {unknown}")
        parts = {}
        for name in ("present", "absent"):
            m = data[name]
            parts[name] = ClassModel([float(v) for v in m["mean"]], [float(v) for v in m["scale"]],
                                     [float(v) for v in m["coef"]], float(m["bias"]))
            if not len(parts[name].mean) == len(parts[name].scale) == len(parts[name].coef) == len(features):
                raise ValueError(f"{name}: {len(parts[name].coef)} coefficients for {len(features)} features")
        return cls(features, parts["present"], parts["absent"], float(data.get("l2", L2)))


def fit_logistic(x: "np.ndarray", y: "np.ndarray", l2: float = L2) -> ClassModel:
    """L2-regularised logistic regression (L-BFGS on standardised features; a constant feature gets weight 0)."""
    import numpy as np
    from scipy.optimize import minimize

    mean = x.mean(axis=0) if len(x) else np.zeros(x.shape[1])
    spread = x.std(axis=0) if len(x) else np.zeros(x.shape[1])
    constant = spread <= 1e-9
    scale = np.where(constant, 1.0, spread)
    z = (x - mean) / scale
    z[:, constant] = 0.0  # exactly 0, whatever the rounding of the mean

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        t = z @ w[:-1] + w[-1]
        p = 1.0 / (1.0 + np.exp(-t))
        value = float(np.sum(np.logaddexp(0.0, t) - y * t) + 0.5 * l2 * w[:-1] @ w[:-1])
        grad = np.append(z.T @ (p - y) + l2 * w[:-1], np.sum(p - y))
        return value, grad

    w0 = np.zeros(x.shape[1] + 1)
    if len(y) and 0 < y.mean() < 1:
        w0[-1] = math.log(y.mean() / (1 - y.mean()))
    w = minimize(loss, w0, jac=True, method="L-BFGS-B").x if len(y) else w0
    return ClassModel(mean.tolist(), scale.tolist(), w[:-1].tolist(), float(w[-1]))


def fit_listwise(groups: Sequence[tuple["np.ndarray", "np.ndarray"]], l2: float = L2) -> ClassModel:
    """A linear scorer trained per document and calibrated: ``groups`` holds one (features, gold 0/1) pair per
    document. Loss: ListNet with the gold candidates as the target — for each document with both gold and
    other candidates, −Σ_gold log softmax(score) over its candidates — plus an L2 penalty on standardised
    features; then Platt scaling (a one-feature logistic regression on the score over every candidate) turns
    scores into probabilities. Without any such document it is ``fit_logistic``."""
    import numpy as np
    from scipy.optimize import minimize

    ranked = [(x, y) for x, y in groups if len(y) > 1 and 0 < y.sum() < len(y)]
    x_all = np.vstack([x for x, _ in groups]) if groups else np.zeros((0, 0))
    y_all = np.concatenate([y for _, y in groups]) if groups else np.zeros(0)
    if not ranked:
        return fit_logistic(x_all, y_all, l2)
    mean = x_all.mean(axis=0)
    spread = x_all.std(axis=0)
    constant = spread <= 1e-9
    scale = np.where(constant, 1.0, spread)
    z = (np.vstack([x for x, _ in ranked]) - mean) / scale
    z[:, constant] = 0.0
    y = np.concatenate([g for _, g in ranked])
    sizes = np.array([len(g) for _, g in ranked])
    group = np.repeat(np.arange(len(ranked)), sizes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    gold = np.array([g.sum() for _, g in ranked])[group]

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        t = z @ w
        top = np.maximum.reduceat(t, starts)[group]
        e = np.exp(t - top)
        total = np.add.reduceat(e, starts)[group]
        log_softmax = t - top - np.log(total)
        value = float(-(y * log_softmax).sum() + 0.5 * l2 * w @ w)
        grad = z.T @ (gold * e / total - y) + l2 * w
        return value, grad

    w = minimize(loss, np.zeros(z.shape[1]), jac=True, method="L-BFGS-B").x
    z_all = (x_all - mean) / scale
    z_all[:, constant] = 0.0
    platt = fit_logistic((z_all @ w)[:, None], y_all, l2)  # on the raw score, standardised inside
    a = platt.coef[0] / platt.scale[0]
    coef = a * w
    return ClassModel(mean.tolist(), scale.tolist(), coef.tolist(), float(platt.bias - a * platt.mean[0]))


def fit_model(documents: Sequence[Document], pools: Sequence["CandidatePool"], cosines: Sequence[Sequence[float]],
              *, l2: float = L2) -> MixModel:
    """Fit the mix model on validation documents: their candidate pools (with frequencies when the pools carry
    them), cosines and gold keyphrases (a candidate is positive when its stemmed key is gold)."""
    import numpy as np

    from ..text import stemmed_key
    from .features import FEATURES, FREQUENCY_FEATURES, PROFILE_FEATURES, candidate_features

    with_frequencies = bool(pools) and all(p.index_documents > 0 for p in pools if p.candidates)
    with_profiles = bool(pools) and all(p.profiled for p in pools if p.candidates)
    features = [f for f in FEATURES if (with_frequencies or f not in FREQUENCY_FEATURES)
                and (with_profiles or f not in PROFILE_FEATURES)]
    cols = [FEATURES.index(f) for f in features]
    groups: dict[bool, list[tuple[np.ndarray, np.ndarray]]] = {True: [], False: []}
    for doc, pool, cos in zip(documents, pools, cosines):
        if not pool.candidates:
            continue
        gold = {k for k in map(stemmed_key, doc.keyphrases) if k}
        x, present = candidate_features(doc, pool, cos)
        y = np.array([c.key in gold for c in pool.candidates], dtype=np.float64)
        for part in (True, False):
            mask = present if part else ~present
            if mask.any():
                groups[part].append((x[mask][:, cols], y[mask]))
    parts = {part: fit_listwise(groups[part], l2) if groups[part] else fit_logistic(np.zeros((0, len(cols))),
                                                                                      np.zeros(0), l2)
             for part in (True, False)}
    return MixModel(features, parts[True], parts[False], l2)


@dataclass
class MixFit:
    """A fitted mix weight and how it was fitted."""

    weight: float
    k: int
    validation_documents: int
    objective: str = OBJECTIVE
    objective_value: float = math.nan
    grid: list[dict[str, float]] = field(default_factory=list)  # {weight, objective, P_F1@Q, Abs_R@Q} per point
    validation_fingerprint: str = ""
    model: MixModel | None = None
    model_objective: float | None = None  # the model's objective on the validation documents it was fitted on

    def to_json(self) -> dict[str, Any]:
        """The card's "mix" entry."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "MixFit":
        """Read a card's "mix" entry."""
        return cls(weight=float(data["weight"]), k=int(data["k"]),
                   validation_documents=int(data["validation_documents"]),
                   objective=str(data.get("objective", OBJECTIVE)),
                   objective_value=float(data.get("objective_value", math.nan)),
                   grid=list(data.get("grid", [])), validation_fingerprint=str(data.get("validation_fingerprint", "")),
                   model=MixModel.from_json(data["model"]) if data.get("model") else None,
                   model_objective=None if data.get("model_objective") is None else float(data["model_objective"]))

    def summary(self) -> str:
        """One line for the terminal."""
        model = (f"mix model over {len(self.model.features)} features, {self.objective} = "
                 f"{100 * (self.model_objective or 0.0):.1f}; " if self.model is not None else "")
        return (f"{model}mix weight {self.weight:.2f} (cosine) fitted at k={self.k} on {self.validation_documents} "
                f"validation documents, {self.objective} = {100 * self.objective_value:.1f}")


def validation_split(documents: Sequence[Document], share: float = VALIDATION_SHARE,
                     max_documents: int = VALIDATION_MAX) -> tuple[list[Document], list[Document]]:
    """(rest, validation): a deterministic share of the documents with keyphrases, chosen by a hash of the id."""
    if not 0 <= share < 1:
        raise ConfigError(f"validation share must be in [0, 1), not {share}")
    eligible = [d for d in documents if d.keyphrases]
    if share == 0 or len(eligible) < 2:
        return list(documents), []
    n = min(max_documents, max(math.ceil(share * len(eligible)), min(VALIDATION_MIN, len(eligible) // 5)))
    n = max(1, min(n, len(eligible) - 1))
    chosen = {d.id for d in sorted(eligible, key=lambda d: hashlib.sha1(d.id.encode()).hexdigest())[:n]}
    return [d for d in documents if d.id not in chosen], [d for d in documents if d.id in chosen]


def _fingerprint(documents: Sequence[Document]) -> str:
    return hashlib.sha256("\n".join(sorted(d.id for d in documents)).encode()).hexdigest()[:16]


def _objective(documents: Sequence[Document], prepared: Sequence[Any], pools: Sequence["CandidatePool"],
               scores: Sequence[Sequence[float]], metrics: DocumentMetrics) -> tuple[float, float]:
    """(mean present F1@Q, mean absent R@Q) of the pools ranked by ``scores``."""
    present: list[float] = []
    absent: list[float] = []
    for doc, prep, pool, sc in zip(documents, prepared, pools, scores):
        order = sorted(range(len(sc)), key=lambda i: (-sc[i], i))
        row = metrics(doc.keyphrases, [pool.candidates[i].phrase for i in order], prep)
        if "P_F1@Q" in row:
            present.append(row["P_F1@Q"])
        if "Abs_R@Q" in row:
            absent.append(row["Abs_R@Q"])
    return (sum(present) / len(present) if present else 0.0, sum(absent) / len(absent) if absent else 0.0)


def fit_weight(documents: Sequence[Document], pools: Sequence["CandidatePool"], cosines: Sequence[Sequence[float]],
               metrics: DocumentMetrics, *, k: int, grid: Sequence[float] = GRID, model: bool = False) -> MixFit:
    """The grid weight whose ranking of the validation pools maximises mean(P_F1@Q, Abs_R@Q) (ties → nearer 0.5);
    with ``model`` also the mix model (``fit_model``) and its objective on the same documents."""
    from ..text import prepare

    if not documents:
        raise ConfigError("no validation document to fit the mix weight on")
    prepared = [prepare(d.title, d.text) for d in documents]
    votes = [[c.vote for c in p.candidates] for p in pools]
    points: list[dict[str, float]] = []
    for w in grid:
        p, a = _objective(documents, prepared, pools, [mix_scores(c, v, w) for c, v in zip(cosines, votes)], metrics)
        points.append({"weight": w, "objective": round((p + a) / 2, 6), "P_F1@Q": round(p, 6),
                       "Abs_R@Q": round(a, 6)})
    best = max(points, key=lambda x: (x["objective"], -abs(x["weight"] - DEFAULT_WEIGHT), -x["weight"]))
    fit = MixFit(weight=best["weight"], k=k, validation_documents=len(documents), objective_value=best["objective"],
                 grid=points, validation_fingerprint=_fingerprint(documents))
    if model:
        fit.model = fit_model(documents, pools, cosines)
        p, a = _objective(documents, prepared, pools,
                          [fit.model.scores(d, pool, c) for d, pool, c in zip(documents, pools, cosines)], metrics)
        fit.model_objective = round((p + a) / 2, 6)
    return fit


def fit_mix(documents: Sequence[Document], backend: "Backend", ranker: "Ranker", metrics: DocumentMetrics, *,
            k: int, batch_size: int = 64, grid: Sequence[float] = GRID, model: bool = True) -> MixFit:
    """Fit the mix of ``ranker`` (the linear weight and, with ``model``, the mix model) on validation documents,
    their neighbours retrieved from ``backend`` (each document itself excluded, its own keyphrases not counted in
    the keyphrase frequencies), through the one ranking path's candidate pools."""
    from ..corpus import chunked
    from .pipeline import RankSettings, candidate_pools

    settings = RankSettings(k=k, batch_size=batch_size, exclude_self=True, frequencies=model)
    settings.validate()
    docs: list[Document] = []
    pools: list["CandidatePool"] = []
    cosines: list[list[float]] = []
    for batch in chunked(documents, batch_size):
        batch_pools = candidate_pools(backend, batch, settings)
        cosines.extend(ranker.cosine_scores(batch, batch_pools))
        docs.extend(batch)
        pools.extend(batch_pools)
    return fit_weight(docs, pools, cosines, metrics, k=k, grid=grid, model=model)


def write_fit(model_dir: str | os.PathLike[str], fit: MixFit) -> Path:
    """Store the fit in the model's card under "mix" (the card is rewritten atomically; created if missing)."""
    path = Path(model_dir) / CARD_FILE
    card = json.loads(path.read_text()) if path.is_file() else {"esrank_card": 1}
    card["mix"] = fit.to_json()
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(card, indent=2, default=str))
    os.replace(tmp, path)
    return path


def read_fit(model: str | os.PathLike[str] | None) -> MixFit | None:
    """The fitted mix of a model directory's card, or None (no directory, no card, or no "mix" in it)."""
    if model is None:
        return None
    path = Path(model) / CARD_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text()).get("mix")
        return MixFit.from_json(data) if data else None
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ConfigError(f"{path}: unreadable \"mix\" entry: {e}") from None


def resolve_mix(method: str, weight: float | None, k: int, model: str | os.PathLike[str] | None
                ) -> tuple[float | None, MixModel | None, str | None]:
    """What the mix ranks with: (weight, model, a note for the user or None); both None unless ``method`` is mix.

    An explicit ``weight`` wins (the linear mix); else the model card's fitted mix model, with its fitted weight as
    the fallback for a backend without keyphrase frequencies (noted when fitted at another k); else
    ``DEFAULT_WEIGHT``.
    """
    if method != "mix":
        return None, None, None
    if weight is not None:
        return weight, None, None
    fit = read_fit(model)
    if fit is None:
        return DEFAULT_WEIGHT, None, (f"{model or 'the default model'} has no fitted mix (esrank_card.json "
                                      f"\"mix\"; esrank train fits one); the mix uses the weight {DEFAULT_WEIGHT}")
    what = "mix model" if fit.model is not None else f"mix weight {fit.weight:.2f}"
    note = f"the {what} was fitted at k={fit.k}, ranking at k={k}" if fit.k != k else None
    return fit.weight, fit.model, note
