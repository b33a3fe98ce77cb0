"""The keyphrase service (``esrank serve``): a Starlette app on uvicorn over ``esrank.KeyphraseRanker``, a
micro-batcher that ranks concurrent requests together, request limits, and the cluster connectors."""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import KeyphraseService, build_app, run
    from .batching import MicroBatcher
    from .limits import ServeLimits

# name → submodule; imported on first use (the app needs starlette, the ranking path torch)
_EXPORTS = {"KeyphraseService": "app", "build_app": "app", "run": "app", "MicroBatcher": "batching", "ServeLimits": "limits"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
