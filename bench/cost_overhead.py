"""What per-stage accounting costs: codecarbon's one-off hardware probe and the start/stop of each stage.

Prints, for a stage wrapping no work, the wall time of ``with tracker.stage(...)`` with carbon tracking
(codecarbon offline tracker) and without (``--no-carbon``), min and median over repeats, and their ratio.
Run: python3 bench/cost_overhead.py [repeats]
"""
from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone

from esrank.cost import CostTracker


def _cpu() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def stage_overhead(tracker: CostTracker, repeats: int) -> list[float]:
    """Wall seconds of an empty stage, repeated."""
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        with tracker.stage("tokenisation", items=1):
            pass
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    """Measure and print the figures."""
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    print(f"# cost accounting overhead — {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
          f"{_cpu()}, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        carbon = CostTracker(log_dir=d, carbon=True, country_iso="FRA", device="cpu")
        init = time.perf_counter() - t0
        t0 = time.perf_counter()
        with carbon.stage("tokenisation", items=1):
            pass
        first = time.perf_counter() - t0
        print(f"carbon tracker construction: {init * 1000:.0f} ms; first stage (codecarbon hardware probe): "
              f"{first * 1000:.0f} ms, of which probe {carbon.meter.setup_seconds * 1000:.0f} ms "  # type: ignore[attr-defined]
              f"(kept out of the stage's seconds); energy method: {carbon.meter.method}")
        plain = CostTracker(log_dir=d, carbon=False, device="cpu")
        for _ in range(2):  # interleave to share the machine's noise
            a = stage_overhead(carbon, repeats)
            b = stage_overhead(plain, repeats)
        ma, mb = statistics.median(a), statistics.median(b)
        print(f"empty stage with carbon:    min {min(a) * 1000:.2f} ms, median {ma * 1000:.2f} ms")
        print(f"empty stage with --no-carbon: min {min(b) * 1000:.3f} ms, median {mb * 1000:.3f} ms")
        print(f"ratio carbon / no-carbon (median): {ma / mb:.0f}x")
        rec = carbon.records[-1]
        print(f"an empty carbon stage records {rec.seconds * 1000:.3f} ms of its own time")


if __name__ == "__main__":
    main()
