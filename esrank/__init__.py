"""esrank: retrieval-augmented keyphrase ranking for Elasticsearch, OpenSearch and an embedded BM25 index."""
from __future__ import annotations

__version__ = "0.1.0"

from .corpus import Document, Fields, read_documents  # noqa: E402
from .predictions import Prediction, ScoredPhrase  # noqa: E402

__all__ = ["Document", "Fields", "Prediction", "ScoredPhrase", "read_documents", "__version__"]
