"""Cost and carbon accounting: time, energy, CO2 and dollars per pipeline stage.

```python
tracker = CostTracker(log_dir="costs/", approach="searchkeys")
with tracker.stage("candidate_encoding", items=len(docs)) as rec:
    ...
```
"""
from __future__ import annotations

from .extrapolate import Extrapolation, extrapolate
from .meter import CarbonMeter, NullMeter, Reading, detect_device, host_facts
from .options import cost_options, tracker_from_options
from .records import (LOG_FILE, ONE_OFF_STAGES, STAGES, CostSummary, HostFacts, StageRecord, StageTotals,
                      append_record, log_path, read_records, summarise)
from .tracker import (DEFAULT_COUNTRY_ISO, DEFAULT_PRICE_PER_HOUR, CostTracker, StageRun, intensity_label,
                      price_for_device, read_price_table)

__all__ = [
    "CarbonMeter", "CostSummary", "CostTracker", "DEFAULT_COUNTRY_ISO", "DEFAULT_PRICE_PER_HOUR", "Extrapolation",
    "HostFacts", "LOG_FILE", "NullMeter", "ONE_OFF_STAGES", "Reading", "STAGES", "StageRecord", "StageRun",
    "StageTotals", "append_record", "cost_options", "detect_device", "extrapolate", "host_facts", "intensity_label",
    "log_path",
    "price_for_device", "read_price_table", "read_records", "summarise", "tracker_from_options",
]
