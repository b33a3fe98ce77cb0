"""Energy meters (codecarbon's offline tracker, or none), the device and the host facts of a record."""
from __future__ import annotations

import logging
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..errors import ConfigError, MissingExtraError
from .records import HostFacts

log = logging.getLogger(__name__)

#: CPU modes of codecarbon that read real energy counters; any other mode is an estimate.
_COUNTER_MODES = {"intel_rapl", "windows_emi", "intel_power_gadget", "apple_powermetrics"}


@dataclass
class Reading:
    """Energy and CO2 of one measured segment (None when nothing is measured)."""

    kwh: float | None = None
    kg_co2: float | None = None


class EnergyMeter(Protocol):
    """Measures the energy of consecutive segments of work; one segment open at a time."""

    estimated: bool
    method: str

    def start(self) -> None:
        """Open a segment."""

    def stop(self) -> Reading:
        """Close the open segment and return what it used."""


class NullMeter:
    """No energy measurement (``--no-carbon``): time and dollars only."""

    estimated = False
    method = "none"

    def start(self) -> None:
        """Open a segment (nothing to do)."""

    def stop(self) -> Reading:
        """Close the segment: no energy figures."""
        return Reading()


def _import_codecarbon() -> Any:
    try:
        import codecarbon
    except ImportError:
        raise MissingExtraError("codecarbon", "carbon",
                                "energy and CO2 accounting (or pass --no-carbon for time and dollars only)") from None
    return codecarbon


def country_codes() -> set[str]:
    """ISO 3166-1 alpha-3 codes codecarbon has an energy mix for (offline data)."""
    _import_codecarbon()
    from codecarbon.input import DataSource

    return set(DataSource().get_global_energy_mix_data())


WORLD_AVERAGE = "world average"
"""The location label of records whose CO2 uses codecarbon's world-average carbon intensity."""


def world_average_intensity() -> float:
    """codecarbon's world-average grid carbon intensity in g CO2/kWh (475 in codecarbon 3.3)."""
    _import_codecarbon()
    from codecarbon.input import DataSource

    return float(DataSource().get_carbon_intensity_per_source_data()["world_average"])


def country_intensity(country_iso: str) -> float:
    """codecarbon's own grid carbon intensity of a country in g CO2/kWh (its offline energy-mix data)."""
    _import_codecarbon()
    from codecarbon.core.emissions import Emissions
    from codecarbon.input import DataSource

    mix = DataSource().get_global_energy_mix_data()[country_iso]
    return float(Emissions._global_energy_mix_to_emissions_rate(mix).kgs_per_kWh * 1000.0)


def configured_country() -> str | None:
    """The country codecarbon's own configuration names (CODECARBON_COUNTRY_ISO_CODE, .codecarbon.config), if any."""
    _import_codecarbon()
    from codecarbon.core.config import get_hierarchical_config

    try:
        code = get_hierarchical_config().get("country_iso_code")
    except Exception:  # an unreadable codecarbon config names no location
        return None
    return str(code).strip().upper() or None if code else None


class CarbonMeter:
    """Energy and CO2 through codecarbon's OfflineEmissionsTracker (no network), one task per segment.

    CO2 = energy × the grid carbon intensity of the machine's location: the country given (``--country-iso``),
    else the one codecarbon's own configuration names, else codecarbon's world average (offline, the location
    cannot be looked up). ``intensity`` (g CO2/kWh) and ``location`` say which was used.
    The hardware probe of codecarbon (CPU power model, GPUs) runs once, at the first ``start``,
    and is kept out of the measured segment; it is reported in ``setup_seconds``.
    """

    def __init__(self, country_iso: str | None = None, *, tracking_mode: str = "process") -> None:
        _import_codecarbon()
        code = (country_iso or "").strip().upper()
        source = "--country-iso"
        if not code:
            code, source = configured_country() or "", "codecarbon configuration"
        if code and code not in country_codes():
            raise ConfigError(f"unknown country ISO code {code!r} (from the {source}; expected an ISO 3166-1 "
                              "alpha-3 code such as FRA, USA, DEU)")
        if tracking_mode not in ("process", "machine"):
            raise ConfigError(f"carbon tracking mode must be 'process' or 'machine', not {tracking_mode!r}")
        self.country_iso: str | None = code or None
        self.location = code or WORLD_AVERAGE
        self.intensity = country_intensity(code) if code else world_average_intensity()
        self.tracking_mode = tracking_mode
        self._tracker: Any = None
        self.setup_seconds = 0.0
        self.estimated = True
        self.method = ""
        self.gpu = ""
        self._n = 0
        self._open = False
        self._broken = False

    def _ensure(self) -> Any:
        if self._tracker is not None:
            return self._tracker
        from codecarbon import OfflineEmissionsTracker

        t0 = time.perf_counter()
        cc_log = logging.getLogger("codecarbon")
        cc_log.setLevel(logging.ERROR)
        where: dict[str, Any] = ({"country_iso_code": self.country_iso} if self.country_iso else
                                 {"force_carbon_intensity_g_co2e_kwh": self.intensity})
        tracker = OfflineEmissionsTracker(
            **where, output_methods=[], log_level="error",
            tracking_mode=self.tracking_mode, measure_power_secs=3600, allow_multiple_runs=True,
            project_name="esrank", emissions_endpoint=None, api_call_interval=-1,
        )
        # offline means offline, whatever a codecarbon config file or CODECARBON_* variable says
        tracker._electricitymaps_api_token = None
        setattr(tracker, "_output_handlers", [])
        cc_log.propagate = False
        tracker._ensure_hardware_ready()
        self.setup_seconds = time.perf_counter() - t0
        parts = []
        self.estimated = False
        for hw in getattr(tracker, "_hardware", []):
            kind = type(hw).__name__
            mode = getattr(hw, "_mode", None)
            if kind == "CPU":
                if mode not in _COUNTER_MODES:
                    self.estimated = True
                parts.append(f"cpu:{mode}")
            elif kind == "RAM":
                parts.append("ram:model")
            elif kind in ("AppleSiliconChip", "Raspberry"):  # powermetrics / the PMIC: measured
                parts.append(f"{getattr(hw, 'chip_part', 'cpu').lower()}:{kind.lower()}")
            else:
                parts.append(kind.lower())
        if not any(p.startswith("cpu:") for p in parts):  # no CPU meter at all: nothing was read
            self.estimated = True
        self.method = ",".join(parts) or "unknown"
        self.gpu = str(tracker._conf.get("gpu_model") or "")
        self._tracker = tracker
        return tracker

    def start(self) -> None:
        """Open a segment (a codecarbon task); a codecarbon failure leaves the segment unmeasured."""
        self._open = False
        if self._broken:
            return
        try:
            tracker = self._ensure()
            self._n += 1
            tracker.start_task(f"esrank-{self._n}")
            self._open = True
        except Exception as e:  # a failing energy meter must not stop the work it measures
            self._broken = True
            log.warning("codecarbon failed (%s); energy and CO2 are not measured from here on", e)

    def stop(self) -> Reading:
        """Close the segment and return its energy (kWh) and CO2 (kg)."""
        if not self._open:
            return Reading()
        self._open = False
        try:
            data = self._tracker.stop_task()
        except Exception as e:  # codecarbon failures must not lose the stage's time
            log.warning("codecarbon could not measure this stage: %s", e)
            return Reading()
        if data is None:
            return Reading()
        return Reading(kwh=float(data.energy_consumed), kg_co2=float(data.emissions))



def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gb() -> float:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return 0.0


def detect_gpu() -> str:
    """The name of the first CUDA GPU, or "" (uses torch only when it is already imported)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            if torch.cuda.is_available():
                return str(torch.cuda.get_device_name(0))
        except Exception:  # a broken CUDA set-up is not a GPU
            return ""
        return ""
    gpus = Path("/proc/driver/nvidia/gpus")
    try:
        for info in sorted(gpus.glob("*/information")):
            for line in info.read_text(encoding="utf-8", errors="replace").splitlines():
                if line.startswith("Model:"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def detect_device() -> str:
    """The device the work runs on: the GPU name when a CUDA GPU is visible, else ``cpu``."""
    return detect_gpu() or "cpu"


def host_facts(codecarbon_version: str | None = None) -> HostFacts:
    """Facts about this machine for the records (no host name, no user name)."""
    from .. import __version__

    return HostFacts(cpu_model=_cpu_model(), cpu_count=os.cpu_count() or 0, ram_gb=_ram_gb(), gpu=detect_gpu(),
                     os=f"{platform.system()} {platform.release()}", python=platform.python_version(),
                     esrank_version=__version__, codecarbon_version=codecarbon_version)
