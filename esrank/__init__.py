"""esrank: retrieval-augmented keyphrase ranking for Elasticsearch, OpenSearch and an embedded BM25 index."""
from __future__ import annotations

__version__ = "0.1.0"

from .corpus import Document, Fields, read_documents  # noqa: E402
from .predictions import Prediction, ScoredPhrase  # noqa: E402

__all__ = ["Document", "Fields", "KeyphraseRanker", "Prediction", "ScoredPhrase", "read_documents", "__version__"]


def __getattr__(name: str) -> object:
    # the public API facade: KeyphraseRanker (esrank.ranking.api) is imported on first use, so that
    # ``import esrank`` stays light (no torch); the string import keeps the package root out of the layer order
    if name == "KeyphraseRanker":
        import importlib

        return importlib.import_module("esrank.ranking.api").KeyphraseRanker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
