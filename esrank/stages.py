"""Stage accounting as the pipeline sees it: the ``StageTracker`` protocol (``esrank.cost.CostTracker`` is one)
and a null tracker, so ranking, retrieval and training time their stages without knowing about cost records."""
from __future__ import annotations

import contextlib
from typing import Any, ContextManager, Protocol, runtime_checkable


@runtime_checkable
class StageTracker(Protocol):
    """Something that times named stages (``with tracker.stage("document_encoding", items=64): ...``)."""

    def stage(self, name: str, items: int = 0, *, unit: str = "documents",
              documents: int | None = None) -> ContextManager[Any]:
        """A context manager around one run of stage ``name`` that processed ``items`` (in ``unit``)."""
        ...


class NullTracker:
    """The tracker of a run without cost accounting: every stage is a no-op."""

    def stage(self, name: str, items: int = 0, *, unit: str = "documents",
              documents: int | None = None) -> ContextManager[Any]:
        """No timing, no record."""
        return contextlib.nullcontext()


NULL_TRACKER = NullTracker()


def exclusive_stages(tracker: StageTracker | None) -> bool:
    """Whether the tracker needs its stages run one at a time, never overlapping (a tracker that meters energy
    per stage says so with a true ``exclusive`` attribute): the ranking pipeline then does not overlap retrieval
    with encoding."""
    return bool(getattr(tracker, "exclusive", False))


def stage(tracker: StageTracker | None, name: str, items: int = 0, **extra: Any) -> ContextManager[Any]:
    """``tracker.stage(name, items=items, **extra)``, or a no-op when there is no tracker."""
    return (tracker if tracker is not None else NULL_TRACKER).stage(name, items=items, **extra)
