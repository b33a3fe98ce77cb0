"""``CostTracker``: time, energy, CO2 and dollars of each pipeline stage, logged as JSONL."""
from __future__ import annotations

import json
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Mapping

from ..errors import ConfigError, InputError
from .meter import CarbonMeter, EnergyMeter, NullMeter, Reading, detect_device, host_facts
from .records import STAGES, HostFacts, StageRecord, StageTotals, append_record, summarise

#: The reference rate in dollars per hour (an NVIDIA L40S cloud instance).
DEFAULT_PRICE_PER_HOUR = 2.89
#: No default country: the location comes from --country-iso, else codecarbon's configuration, else the world
#: average carbon intensity is used (see ``CarbonMeter``).
DEFAULT_COUNTRY_ISO: str | None = None


def price_for_device(device: str, price_per_hour: float, table: Mapping[str, float] | None = None) -> float:
    """Dollars per hour of a device: the first table key found in its name (case-insensitive), else the flat rate."""
    name = device.lower()
    for key, price in (table or {}).items():
        if key.lower() in name:
            return float(price)
    return float(price_per_hour)


def read_price_table(path: str | Path) -> dict[str, float]:
    """A JSON object mapping device-name fragments (``"L40S"``, ``"A100"``, ``"cpu"``) to dollars per hour."""
    p = Path(path)
    try:
        obj = json.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise InputError(f"cannot read price table: {e.strerror}", source=str(p)) from None
    except json.JSONDecodeError as e:
        raise InputError(f"price table is not JSON: {e.msg}", source=str(p), line=e.lineno) from None
    if not isinstance(obj, dict) or not all(isinstance(v, (int, float)) and v >= 0 for v in obj.values()):
        raise InputError("price table must be a JSON object of device name → non-negative dollars per hour",
                         source=str(p))
    return {str(k): float(v) for k, v in obj.items()}


@dataclass
class StageRun:
    """The open stage handed to the ``with`` block; set or grow ``items`` inside it."""

    stage: str
    items: int = 0
    unit: str = "documents"
    documents: int | None = None
    seconds: float = 0.0
    kwh: float | None = None
    kg_co2: float | None = None
    _since: float | None = field(default=None, repr=False)

    def add(self, n: int = 1) -> None:
        """Count ``n`` more items."""
        self.items += n

    def _resume(self, meter: EnergyMeter) -> None:
        meter.start()
        self._since = time.perf_counter()

    def _pause(self, meter: EnergyMeter) -> None:
        if self._since is None:
            return
        self.seconds += time.perf_counter() - self._since
        self._since = None
        r: Reading = meter.stop()
        if r.kwh is not None:
            self.kwh = (self.kwh or 0.0) + r.kwh
        if r.kg_co2 is not None:
            self.kg_co2 = (self.kg_co2 or 0.0) + r.kg_co2


class CostTracker:
    """Accounts each stage run inside ``with tracker.stage(name, items=n):`` as a ``StageRecord``.

    Nested stages are exclusive: while an inner stage runs, the outer one is paused, so the
    records of a run add up to the time (and energy) that was tracked, with nothing counted twice.
    """

    def __init__(self, log_dir: str | Path | None = None, price_per_hour: float = DEFAULT_PRICE_PER_HOUR,
                 carbon: bool = True, country_iso: str | None = DEFAULT_COUNTRY_ISO, approach: str = "searchkeys",
                 device: str | None = None, *, price_table: Mapping[str, float] | None = None,
                 tracking_mode: str = "process") -> None:
        if price_per_hour < 0:
            raise ConfigError(f"--price-per-hour must be >= 0, not {price_per_hour}")
        if not approach or not approach.strip():
            raise ConfigError("the approach name must not be empty")
        self.log_dir = Path(log_dir) if log_dir is not None else None
        if self.log_dir is not None:
            try:
                self.log_dir.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise ConfigError(f"cannot create the cost log directory: {e.strerror}",
                                  source=str(self.log_dir)) from None
        self.approach = approach.strip()
        self._flat_price = float(price_per_hour)
        self._price_table = dict(price_table or {})
        self.device = ""
        self.price_per_hour = self._flat_price
        self.set_device(device or detect_device())
        self.meter: EnergyMeter = CarbonMeter(country_iso, tracking_mode=tracking_mode) if carbon else NullMeter()
        cm = self.meter if isinstance(self.meter, CarbonMeter) else None
        self.country_iso = cm.country_iso if cm else None
        self.intensity: float | None = cm.intensity if cm else None  # g CO2/kWh used for the CO2 figures
        self.location = cm.location if cm else ""
        self.run_id = uuid.uuid4().hex[:12]
        self.records: list[StageRecord] = []
        self._stack: list[StageRun] = []
        self._host: HostFacts | None = None

    def set_device(self, device: str) -> None:
        """Name the device the next stages run on (e.g. once a command has chosen CPU or GPU); sets its price."""
        self.device = device or "cpu"
        self.price_per_hour = price_for_device(self.device, self._flat_price, self._price_table)

    @property
    def carbon(self) -> bool:
        """Whether energy and CO2 are measured."""
        return isinstance(self.meter, CarbonMeter)

    @property
    def exclusive(self) -> bool:
        """Whether stages must not overlap: true when energy is metered, since a stage's kWh is read off the
        process's meter over the stage's interval (``esrank.stages.exclusive_stages``; the ranking pipeline then
        retrieves and encodes one after the other, see docs/cost.md)."""
        return self.carbon

    @property
    def log_file(self) -> Path | None:
        """The JSONL file records are appended to (None when not logging)."""
        return self.log_dir / "cost.jsonl" if self.log_dir is not None else None

    @contextmanager
    def stage(self, name: str, items: int = 0, *, unit: str = "documents",
              documents: int | None = None) -> Iterator[StageRun]:
        """Time (and meter) the block as one run of stage ``name``; the record is kept when the block succeeds.

        ``items`` counts what the stage processed, in ``unit`` (documents by default); when the unit is not
        documents, pass ``documents`` (the documents served) so the per-document cost can be computed.
        """
        if name not in STAGES:
            raise ValueError(f"unknown stage {name!r}; expected one of {', '.join(STAGES)}")
        run = StageRun(name, int(items), unit or "documents", documents)
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        if self._stack:
            self._stack[-1]._pause(self.meter)
        self._stack.append(run)
        run._resume(self.meter)
        ok = False
        try:
            yield run
            ok = True
        finally:
            run._pause(self.meter)
            self._stack.pop()
            if self._stack:
                self._stack[-1]._resume(self.meter)
            if ok:
                self._record(run, started)

    def _record(self, run: StageRun, started: str) -> StageRecord:
        if self._host is None:
            cc = getattr(self.meter, "_tracker", None)
            self._host = host_facts(getattr(cc, "_conf", {}).get("codecarbon_version") if cc is not None else None)
        rec = StageRecord(
            stage=run.stage, approach=self.approach, items=max(0, int(run.items)), seconds=run.seconds,
            kwh=run.kwh, kg_co2=run.kg_co2, dollars=run.seconds / 3600.0 * self.price_per_hour,
            device=self.device, estimated=bool(self.meter.estimated) and run.kwh is not None, host=self._host,
            price_per_hour=self.price_per_hour, country_iso=self.country_iso, energy_method=self.meter.method,
            run_id=self.run_id, started_at=started, unit=run.unit,
            documents=None if run.documents is None else max(0, int(run.documents)),
            g_co2_per_kwh=self.intensity if run.kg_co2 is not None else None,
            carbon_location=self.location if run.kg_co2 is not None else "",
        )
        self.records.append(rec)
        if self.log_dir is not None:
            append_record(self.log_dir, rec)
        return rec

    def totals(self) -> dict[str, StageTotals]:
        """Totals of this tracker's records per approach (the sum of their stages)."""
        return summarise(self.records).totals

    def summary(self) -> str:
        """One line for the terminal: time, dollars, and energy and CO2 with the carbon intensity used."""
        seconds = sum(r.seconds for r in self.records)
        dollars = sum(r.dollars for r in self.records)
        line = f"cost: {seconds:.2f} s, ${dollars:.4g}"
        kwh = [r.kwh for r in self.records if r.kwh is not None]
        co2 = [r.kg_co2 for r in self.records if r.kg_co2 is not None]
        if kwh:
            line += f", {sum(kwh):.3g} kWh"
        if co2:
            line += f", {sum(co2):.3g} kg CO2 at {intensity_label(self.intensity, self.location)}"
        if self.records and self.records[-1].estimated:
            line += " (energy estimated)"
        if self.log_file is not None:
            line += f"; recorded in {self.log_file}"
        return line


def intensity_label(g_per_kwh: float | None, location: str) -> str:
    """How a CO2 figure was obtained, e.g. "475 g CO2/kWh (world average)" or "56 g CO2/kWh (FRA)"."""
    if g_per_kwh is None:
        return "an unknown carbon intensity"
    return f"{g_per_kwh:.0f} g CO2/kWh ({location or 'unknown location'})"
