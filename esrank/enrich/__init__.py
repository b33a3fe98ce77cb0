"""Enrichment of a live index: scan its documents (``scan``), rank their keyphrases, write them back (``write``)."""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .job import EnrichReport, EnrichSettings, enrich_index

# name → submodule; imported on first use so that ``import esrank.enrich`` does not import torch
_EXPORTS = {"EnrichReport": "job", "EnrichSettings": "job", "enrich_index": "job"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
