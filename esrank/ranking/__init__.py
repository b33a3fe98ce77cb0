"""Ranking: candidate pools from retrieved neighbours, the bi-encoder, its losses and training, the ranking path."""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .candidates import Candidate, CandidatePool, pool_from_neighbours
    from .encoder import EmbeddingCache, Encoder
    from .mix import MixFit, fit_mix, mix_scores
    from .pipeline import RankSettings, rank_documents
    from .ranker import Ranker, RankStats, vote_rank_pools
    from .training import TrainConfig, train

# name → submodule; imported on first use so that ``import esrank.ranking`` does not import torch
_EXPORTS = {
    "Candidate": "candidates", "CandidatePool": "candidates", "pool_from_neighbours": "candidates",
    "EmbeddingCache": "encoder", "Encoder": "encoder",
    "MixFit": "mix", "fit_mix": "mix", "mix_scores": "mix",
    "RankSettings": "pipeline", "rank_documents": "pipeline",
    "Ranker": "ranker", "RankStats": "ranker", "vote_rank_pools": "ranker",
    "TrainConfig": "training", "train": "training",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
