"""BM25 retrieval backends: Elasticsearch/OpenSearch (``elastic``) and the embedded bm25s index (``embedded``)."""
from .base import Backend, BulkResult, Neighbour

__all__ = ["Backend", "BulkResult", "Neighbour"]
