"""The StageTracker protocol: the cost tracker is one, the null tracker records nothing, stage() takes None."""
from __future__ import annotations

from pathlib import Path

from esrank import stages
from esrank.cost import CostTracker


def test_cost_tracker_is_a_stage_tracker(tmp_path: Path) -> None:
    tracker = CostTracker(tmp_path / "cost", carbon=False)
    assert isinstance(tracker, stages.StageTracker)
    with stages.stage(tracker, "document_encoding", items=3):
        pass
    assert [r.stage for r in tracker.records] == ["document_encoding"]
    assert tracker.records[0].items == 3


def test_without_a_tracker_stages_are_no_ops() -> None:
    assert isinstance(stages.NULL_TRACKER, stages.StageTracker)
    with stages.stage(None, "document_encoding", items=3) as run:
        assert run is None
    with stages.NULL_TRACKER.stage("fine_tuning", 5) as run:
        assert run is None
