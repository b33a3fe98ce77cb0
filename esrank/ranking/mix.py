"""Neighbour-aware scores: a linear mix of the bi-encoder's cosine and the normalised neighbour vote.

score = w · cosine + (1 − w) · vote / max(vote in the pool), where a candidate's vote is the summed BM25 score of
the neighbours carrying it. The weight w is fitted at training time on held-out validation documents (a grid
search maximising the mean of present F1@Q and absent R@Q) and stored in the model card (``esrank_card.json``,
key ``"mix"``); a model without a fitted weight uses ``DEFAULT_WEIGHT``.
"""
from __future__ import annotations

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
    from ..retrieval.base import Backend
    from .candidates import CandidatePool
    from .ranker import Ranker

DEFAULT_WEIGHT = 0.5
GRID = tuple(round(i * 0.05, 2) for i in range(21))  # 0, 0.05, ..., 1
VALIDATION_SHARE = 0.05
VALIDATION_MAX = 500
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
class MixFit:
    """A fitted mix weight and how it was fitted."""

    weight: float
    k: int
    validation_documents: int
    objective: str = OBJECTIVE
    objective_value: float = math.nan
    grid: list[dict[str, float]] = field(default_factory=list)  # {weight, objective, P_F1@Q, Abs_R@Q} per point
    validation_fingerprint: str = ""

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
                   grid=list(data.get("grid", [])), validation_fingerprint=str(data.get("validation_fingerprint", "")))

    def summary(self) -> str:
        """One line for the terminal."""
        return (f"mix weight {self.weight:.2f} (cosine) fitted at k={self.k} on {self.validation_documents} "
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


def fit_weight(documents: Sequence[Document], pools: Sequence["CandidatePool"], cosines: Sequence[Sequence[float]],
               metrics: DocumentMetrics, *, k: int, grid: Sequence[float] = GRID) -> MixFit:
    """The grid weight whose ranking of the validation pools maximises mean(P_F1@Q, Abs_R@Q); ties → nearer 0.5."""
    from ..text import prepare

    if not documents:
        raise ConfigError("no validation document to fit the mix weight on")
    prepared = [prepare(d.title, d.text) for d in documents]
    votes = [[c.vote for c in p.candidates] for p in pools]
    points: list[dict[str, float]] = []
    for w in grid:
        present: list[float] = []
        absent: list[float] = []
        for doc, prep, pool, cos, vote in zip(documents, prepared, pools, cosines, votes):
            scores = mix_scores(cos, vote, w)
            order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
            row = metrics(doc.keyphrases, [pool.candidates[i].phrase for i in order], prep)
            if "P_F1@Q" in row:
                present.append(row["P_F1@Q"])
            if "Abs_R@Q" in row:
                absent.append(row["Abs_R@Q"])
        p = sum(present) / len(present) if present else 0.0
        a = sum(absent) / len(absent) if absent else 0.0
        points.append({"weight": w, "objective": round((p + a) / 2, 6), "P_F1@Q": round(p, 6),
                       "Abs_R@Q": round(a, 6)})
    best = max(points, key=lambda x: (x["objective"], -abs(x["weight"] - DEFAULT_WEIGHT), -x["weight"]))
    return MixFit(weight=best["weight"], k=k, validation_documents=len(documents), objective_value=best["objective"],
                  grid=points, validation_fingerprint=_fingerprint(documents))


def fit_mix(documents: Sequence[Document], backend: "Backend", ranker: "Ranker", metrics: DocumentMetrics, *,
            k: int, batch_size: int = 64, grid: Sequence[float] = GRID) -> MixFit:
    """Fit the mix weight of ``ranker`` on validation documents, their neighbours retrieved from ``backend``
    (each document itself excluded), through the one ranking path's candidate pools."""
    from ..corpus import chunked
    from .pipeline import RankSettings, candidate_pools

    settings = RankSettings(k=k, batch_size=batch_size, exclude_self=True)
    settings.validate()
    docs: list[Document] = []
    pools: list["CandidatePool"] = []
    cosines: list[list[float]] = []
    for batch in chunked(documents, batch_size):
        batch_pools = candidate_pools(backend, batch, settings)
        cosines.extend(ranker.cosine_scores(batch, batch_pools))
        docs.extend(batch)
        pools.extend(batch_pools)
    return fit_weight(docs, pools, cosines, metrics, k=k, grid=grid)


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


def weight_for(model: str | os.PathLike[str] | None) -> tuple[float, MixFit | None]:
    """The mix weight to rank with: the card's fitted one, else ``DEFAULT_WEIGHT`` (fit None)."""
    fit = read_fit(model)
    return (fit.weight, fit) if fit is not None else (DEFAULT_WEIGHT, None)


def resolve_weight(method: str, weight: float | None, k: int,
                   model: str | os.PathLike[str] | None) -> tuple[float | None, str | None]:
    """The mix weight to rank with (None unless ``method`` is mix) and a note for the user, if any: an explicit
    ``weight`` wins, else the model card's fitted one (noted when fitted at another k), else ``DEFAULT_WEIGHT``."""
    if method != "mix" or weight is not None:
        return weight, None
    fit = read_fit(model)
    if fit is None:
        return DEFAULT_WEIGHT, (f"{model or 'the default model'} has no fitted mix weight "
                                f"(esrank_card.json \"mix\"); the mix uses {DEFAULT_WEIGHT}")
    note = f"the mix weight {fit.weight:.2f} was fitted at k={fit.k}, ranking at k={k}" if fit.k != k else None
    return fit.weight, note

