"""BM25 retrieval: backends for Elasticsearch/OpenSearch (``elastic``) and the embedded bm25s index (``embedded``),
and loading a corpus into them (``loading``)."""
from .base import Backend, BulkResult, Neighbour

__all__ = ["Backend", "BulkResult", "Neighbour"]
