"""What per-stage accounting costs: codecarbon's one-off hardware probe and the start/stop of each stage.

Prints, for a stage wrapping no work, the wall time of ``with tracker.stage(...)`` with carbon tracking
(codecarbon offline tracker) and without (``--no-carbon``), min and median over repeats, and their ratio.
Run: python3 bench/bench_cost.py [repeats]
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine_facts  # noqa: E402

from esrank.cost import CostTracker  # noqa: E402


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
    print(f"# cost accounting overhead — {machine_facts()}")
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        carbon = CostTracker(log_dir=d, carbon=True, country_iso="FRA", device="cpu")
        init = time.perf_counter() - t0
        t0 = time.perf_counter()
        with carbon.stage("tokenisation", items=1):
            pass
        first = time.perf_counter() - t0
        probe = getattr(carbon.meter, "setup_seconds", 0.0)
        print(f"carbon tracker construction: {init * 1000:.0f} ms; first stage (codecarbon hardware probe): "
              f"{first * 1000:.0f} ms, of which probe {probe * 1000:.0f} ms "
              f"(kept out of the stage's seconds); energy method: {carbon.meter.method}")
        machine = CostTracker(log_dir=d, carbon=True, device="cpu", tracking_mode="machine")
        with machine.stage("tokenisation", items=1):
            pass
        plain = CostTracker(log_dir=d, carbon=False, device="cpu")
        a: list[float] = []
        m: list[float] = []
        b: list[float] = []
        for _ in range(2):  # interleave to share the machine's noise
            a += stage_overhead(carbon, repeats)
            m += stage_overhead(machine, repeats)
            b += stage_overhead(plain, repeats)
        ma, mm, mb = statistics.median(a), statistics.median(m), statistics.median(b)
        print(f"empty stage, carbon (process mode): min {min(a) * 1000:.2f} ms, median {ma * 1000:.2f} ms")
        print(f"empty stage, carbon (machine mode): min {min(m) * 1000:.2f} ms, median {mm * 1000:.2f} ms")
        print(f"empty stage, --no-carbon:           min {min(b) * 1000:.3f} ms, median {mb * 1000:.3f} ms")
        print(f"ratio process / machine / no-carbon (median): {ma / mb:.0f} : {mm / mb:.0f} : 1")
        rec = carbon.records[-1]
        print(f"an empty carbon stage records {rec.seconds * 1000:.3f} ms of its own time")
        for tr, label in ((carbon, "process"), (machine, "machine")):
            with tr.stage("candidate_ranking", items=1):
                end = time.perf_counter() + 2.0
                while time.perf_counter() < end:  # one busy thread for 2 s
                    pass
            r = tr.records[-1]
            watts = (r.kwh or 0.0) * 3.6e6 / r.seconds
            print(f"2 s of one busy thread, {label} mode: {r.kwh:.3g} kWh = {watts:.1f} W mean, "
                  f"{(r.kg_co2 or 0) * 1000:.3g} g CO2 at {r.grid}, estimated={r.estimated}")


if __name__ == "__main__":
    main()
