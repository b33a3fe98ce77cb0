"""Click options shared by every command that accounts for its cost (``--cost-log DIR`` and friends)."""
from __future__ import annotations

import functools
from typing import Any, Callable

import click

from .tracker import DEFAULT_COUNTRY_ISO, DEFAULT_PRICE_PER_HOUR, CostTracker, read_price_table

F = Callable[..., Any]

_KEYS = ("cost_log", "price_per_hour", "price_table", "country_iso", "no_carbon", "approach", "carbon_mode")


def cost_options(f: F | None = None, *, approach: str = "searchkeys") -> Any:
    """Add --cost-log, --price-per-hour, --price-table, --country-iso, --no-carbon, --carbon-mode, --approach.

    The command receives one ready ``tracker`` (a ``CostTracker`` filing its records under ``approach`` unless
    --approach names another); ``tracker_from_options(kw)`` hands it over in commands that still ask for it.
    """
    if f is None:
        return lambda g: cost_options(g, approach=approach)
    opts = [
        click.option("--cost-log", type=click.Path(file_okay=False), envvar="ESRANK_COST_LOG", default=None,
                     help="Append one cost record per stage (time, kWh, kg CO2, dollars) to DIR/cost.jsonl; "
                          "read it back with `esrank report --cost-log DIR`."),
        click.option("--price-per-hour", type=click.FloatRange(min=0), envvar="ESRANK_PRICE_PER_HOUR",
                     default=DEFAULT_PRICE_PER_HOUR, show_default=True,
                     help="Dollars per hour of the machine (default: the reference NVIDIA L40S rate)."),
        click.option("--price-table", type=click.Path(dir_okay=False, exists=True), envvar="ESRANK_PRICE_TABLE",
                     default=None, help="JSON object of device-name fragment → dollars per hour "
                                        '(e.g. {"L40S": 2.89, "A100": 3.67, "cpu": 0.4}); falls back to '
                                        "--price-per-hour."),
        click.option("--country-iso", envvar="ESRANK_COUNTRY_ISO", default=DEFAULT_COUNTRY_ISO,
                     help="ISO 3166-1 alpha-3 code of the country whose grid the machine draws from; CO2 then uses "
                          "codecarbon's carbon intensity for it (offline data). Default: the country of "
                          "codecarbon's own configuration (CODECARBON_COUNTRY_ISO_CODE), else codecarbon's world "
                          "average (475 g/kWh); esrank never looks the location up on the network."),
        click.option("--no-carbon", is_flag=True, envvar="ESRANK_NO_CARBON",
                     help="Do not measure energy and CO2 (time and dollars only; codecarbon not needed)."),
        click.option("--carbon-mode", type=click.Choice(["process", "machine"]), envvar="ESRANK_CARBON_MODE",
                     default="process", show_default=True,
                     help="Measure this process (and children) only, or the whole machine."),
        click.option("--approach", envvar="ESRANK_APPROACH", default=None,
                     help="Name of the approach the records are filed under in the report "
                          "(default: the command's own, e.g. searchkeys or bart)."),
    ]
    @functools.wraps(f)
    def wrapper(*args: Any, **kw: Any) -> Any:
        named = kw.get("approach") is not None
        kw["tracker"] = _build(kw, approach)
        kw["tracker"]._approach_named = named
        return f(*args, **kw)

    g: F = wrapper
    for o in reversed(opts):
        g = o(g)
    return g


def tracker_from_options(kw: dict[str, Any], *, approach: str | None = None) -> CostTracker:
    """The command's tracker (built by ``cost_options``), or one built from the cost options left in ``kw``.

    ``approach`` files the records under that name unless --approach named another.
    Without --cost-log the tracker still times the stages (in memory) but measures no energy.
    """
    tracker = kw.pop("tracker", None)
    if isinstance(tracker, CostTracker):
        if approach and not getattr(tracker, "_approach_named", False):
            tracker.approach = approach
        return tracker
    return _build(kw, approach or "searchkeys")


def _build(kw: dict[str, Any], approach: str) -> CostTracker:
    """Pop the cost options from a command's kwargs and build its tracker."""
    opts = {k: kw.pop(k, None) for k in _KEYS}
    log_dir = opts["cost_log"]
    price = opts["price_per_hour"]
    table = read_price_table(opts["price_table"]) if opts["price_table"] else None
    return CostTracker(
        log_dir=log_dir,
        price_per_hour=DEFAULT_PRICE_PER_HOUR if price is None else float(price),
        carbon=bool(log_dir) and not opts["no_carbon"],
        country_iso=opts["country_iso"] or DEFAULT_COUNTRY_ISO,
        approach=opts["approach"] or approach,
        price_table=table,
        tracking_mode=opts["carbon_mode"] or "process",
    )
