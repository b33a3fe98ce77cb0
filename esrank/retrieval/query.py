"""The query a document sends to a BM25 index: its distinct words, bounded in number."""
from __future__ import annotations

from bm25s.stopwords import STOPWORDS_EN

from ..corpus import Document
from .bm25_index import WORD_RE

DEFAULT_MAX_TERMS = 200  # far below OpenSearch's default max_clause_count (1024)
_STOP = frozenset(STOPWORDS_EN)  # Lucene's English stop set, as in the servers' analyzers


def query_terms(document: Document, max_terms: int = DEFAULT_MAX_TERMS) -> list[str]:
    """Distinct lowercased words (2+ letters/digits) of title then text, stop words dropped, at most ``max_terms``.

    Only word tokens survive, so Lucene syntax or JSON inside a document can never change the query;
    the bound keeps every query below the servers' clause limits, whatever the document's length.
    """
    seen: dict[str, None] = {}
    for part in (document.title, document.text):
        for word in WORD_RE.findall(part.lower()):
            if word in _STOP or word in seen:
                continue
            seen[word] = None
            if len(seen) >= max_terms:
                return list(seen)
    return list(seen)


def query_text(document: Document, max_terms: int = DEFAULT_MAX_TERMS) -> str:
    """``query_terms`` joined by spaces (what a match query or the embedded tokenizer receives)."""
    return " ".join(query_terms(document, max_terms))
