"""Search that uses the enrichment: the query forms shipped in ``mappings/search/`` and their rendering.

Each file holds a search body with ``{{name}}`` placeholders (a string that is exactly one placeholder takes
the parameter's JSON value, a list element ``"{{name}}"`` holding a list is spliced in, other strings get
text substitution) — the same bodies docs/cluster.md shows as stored search templates.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..errors import ConfigError
from .mappings import load_mapping

FORMS = ("bm25", "keyphrases", "rank_feature")
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_WORD = re.compile(r"\w+")
MAX_NGRAM = 3


@dataclass(frozen=True)
class QueryForm:
    """A named search body with placeholders, from ``mappings/search/<name>.json``."""

    name: str
    source: dict[str, Any]
    feature_clause: dict[str, Any] | None = None

    @classmethod
    def load(cls, name: str) -> "QueryForm":
        """The query form of that name."""
        if name not in FORMS:
            raise ConfigError(f"unknown query form {name!r}; choose among {', '.join(FORMS)}")
        data = load_mapping(f"search/{name}")
        return cls(name, data["source"], data.get("feature_clause"))

    def render(self, query: str, *, fields: Sequence[str], field: str = "esrank",
               enrichment_fields: Sequence[str] = (), boost: float = 1.0) -> dict[str, Any]:
        """The search body for one query."""
        params: dict[str, Any] = {"query": query, "fields": list(fields), "field": field,
                                  "enrichment_fields": list(enrichment_fields) or [f"{field}.keyphrases.phrase.text"],
                                  "boost": boost}
        if self.feature_clause is not None:
            params["feature_clauses"] = [render(self.feature_clause, {**params, "phrase": p})
                                         for p in query_phrases(query)]
        return dict(render(self.source, params))


def query_phrases(query: str, max_n: int = MAX_NGRAM) -> list[str]:
    """The word n-grams of a query (n = 1..max_n, lowercased, dots dropped), longest first, each once."""
    words = [w.lower() for w in _WORD.findall(query.replace(".", " "))]
    out: dict[str, None] = {}
    for n in range(min(max_n, len(words)), 0, -1):
        for i in range(len(words) - n + 1):
            out[" ".join(words[i:i + n])] = None
    return list(out)


def render(value: Any, params: Mapping[str, Any]) -> Any:
    """``value`` with its placeholders replaced by ``params`` (see the module docstring)."""
    if isinstance(value, dict):
        return {render(k, params): render(v, params) for k, v in value.items()}
    if isinstance(value, list):
        out: list[Any] = []
        for item in value:
            m = _PLACEHOLDER.fullmatch(item) if isinstance(item, str) else None
            if m and isinstance(params.get(m.group(1)), list):
                out.extend(params[m.group(1)])
            else:
                out.append(render(item, params))
        return out
    if isinstance(value, str):
        m = _PLACEHOLDER.fullmatch(value)
        if m:
            return params[m.group(1)]
        return _PLACEHOLDER.sub(lambda g: str(params[g.group(1)]), value)
    return value
