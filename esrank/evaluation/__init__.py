"""Evaluation: PRMU keyphrase metrics and significance, retrieval gain, corpus statistics, tables, the report."""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .prmu import EvalResult, Significance, evaluate, significance_table
    from .report import write_report
    from .retrieval import evaluate_retrieval
    from .stats import corpus_stats

# name → submodule; imported on first use (numpy, scipy and matplotlib stay out of ``import esrank.evaluation``)
_EXPORTS = {
    "EvalResult": "prmu", "Significance": "prmu", "evaluate": "prmu", "significance_table": "prmu",
    "write_report": "report", "evaluate_retrieval": "retrieval", "corpus_stats": "stats",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
