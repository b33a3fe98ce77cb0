"""Cost accounting: stage records, totals, dollars, JSONL log, codecarbon offline, options, extrapolation."""
from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from esrank.cost import (STAGES, CostTracker, HostFacts, StageRecord, cost_options, extrapolate, price_for_device,
                         read_price_table, read_records, summarise, tracker_from_options)
from esrank.errors import ConfigError, InputError, MissingExtraError


def _busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        x += 1


def _rec(approach: str, stage: str, items: int, seconds: float, dollars: float, kwh: float | None = None,
         kg: float | None = None, estimated: bool = False) -> StageRecord:
    return StageRecord(stage=stage, approach=approach, items=items, seconds=seconds, kwh=kwh, kg_co2=kg,
                       dollars=dollars, device="cpu", estimated=estimated)


def test_stages_add_up_and_dollars_follow_the_price(tmp_path: Path) -> None:
    tr = CostTracker(log_dir=tmp_path, price_per_hour=3600.0, carbon=False, approach="searchkeys", device="cpu")
    with tr.stage("index_loading", items=4):
        time.sleep(0.05)
    with tr.stage("candidate_ranking") as rec:
        time.sleep(0.02)
        rec.items = 3
        rec.add(2)
    assert [r.stage for r in tr.records] == ["index_loading", "candidate_ranking"]
    assert [r.items for r in tr.records] == [4, 5]
    assert tr.records[0].seconds >= 0.05 and tr.records[1].seconds >= 0.02
    for r in tr.records:
        # $3600/h is $1/s: dollars equal seconds
        assert r.dollars == pytest.approx(r.seconds)
        assert r.kwh is None and r.kg_co2 is None and r.estimated is False
    tot = tr.totals()["searchkeys"]
    assert tot.runs == 2 and tot.items == 9
    assert tot.seconds == pytest.approx(sum(r.seconds for r in tr.records))
    assert tot.dollars == pytest.approx(sum(r.dollars for r in tr.records))
    # the log holds the same records, one JSON line each
    lines = (tmp_path / "cost.jsonl").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["stage"] == "candidate_ranking"
    assert list(read_records(tmp_path)) == tr.records


def test_reference_price_is_the_l40s_rate() -> None:
    tr = CostTracker(carbon=False, device="cpu")
    with tr.stage("tokenisation", items=1):
        time.sleep(0.01)
    r = tr.records[0]
    assert r.price_per_hour == 2.89
    assert r.dollars == pytest.approx(r.seconds / 3600 * 2.89)


def test_nested_stages_are_exclusive() -> None:
    tr = CostTracker(carbon=False, device="cpu")
    t0 = time.perf_counter()
    with tr.stage("fine_tuning", items=1):
        time.sleep(0.05)
        with tr.stage("document_encoding", items=1):
            time.sleep(0.15)
        time.sleep(0.05)
    wall = time.perf_counter() - t0
    by_stage = {r.stage: r for r in tr.records}
    outer, inner = by_stage["fine_tuning"], by_stage["document_encoding"]
    assert 0.1 <= outer.seconds < 0.25  # counting the inner 0.15 s too would make it >= 0.25
    assert inner.seconds >= 0.15
    assert outer.seconds + inner.seconds == pytest.approx(wall, abs=0.02)


def test_failed_stage_is_not_recorded_and_unknown_stage_is_refused() -> None:
    tr = CostTracker(carbon=False, device="cpu")
    with pytest.raises(RuntimeError):
        with tr.stage("enrichment", items=1):
            raise RuntimeError("boom")
    assert tr.records == []
    with pytest.raises(ValueError, match="unknown stage"):
        with tr.stage("tokenization"):
            pass
    assert "bart_inference" in STAGES and len(STAGES) == 10


def test_price_table_matches_device_fragments(tmp_path: Path) -> None:
    table = {"A100": 3.67, "l40s": 1.5}
    assert price_for_device("NVIDIA L40S", 2.89, table) == 1.5
    assert price_for_device("NVIDIA A100-SXM4-80GB", 2.89, table) == 3.67
    assert price_for_device("cpu", 2.89, table) == 2.89
    p = tmp_path / "prices.json"
    p.write_text(json.dumps({"cpu": 0.5}))
    tr = CostTracker(carbon=False, device="cpu", price_table=read_price_table(p))
    assert tr.price_per_hour == 0.5
    tr.set_device("NVIDIA L40S")  # not in the table: the flat rate
    assert (tr.device, tr.price_per_hour) == ("NVIDIA L40S", 2.89)
    p.write_text('{"cpu": "cheap"}')
    with pytest.raises(InputError, match="price table"):
        read_price_table(p)


def test_summary_totals_and_extrapolation_by_hand() -> None:
    recs = [
        _rec("searchkeys", "candidate_ranking", 50, 5.0, 0.5, 0.002, 0.0001),
        _rec("searchkeys", "index_loading", 100, 10.0, 1.0, 0.004, 0.0002),
        _rec("searchkeys", "candidate_ranking", 50, 5.0, 0.5, 0.002, 0.0001),
        _rec("bart", "bart_inference", 10, 20.0, 2.0),
        _rec("bart", "enrichment", 0, 1.0, 0.1),
    ]
    s = summarise(recs)
    assert s.approaches == ["searchkeys", "bart"]
    # stages in pipeline order, runs of the same stage summed
    assert [(t.approach, t.stage, t.runs, t.items) for t in s.stages] == [
        ("searchkeys", "index_loading", 1, 100), ("searchkeys", "candidate_ranking", 2, 100),
        ("bart", "bart_inference", 1, 10), ("bart", "enrichment", 1, 0)]
    sk = s.totals["searchkeys"]
    assert (sk.seconds, sk.dollars) == (20.0, 2.0)
    assert sk.kwh == pytest.approx(0.008) and sk.kg_co2 == pytest.approx(0.0004)
    assert s.totals["bart"].kwh is None  # not measured is not zero
    ex = {e.approach: e for e in extrapolate(s, 1000)}
    # searchkeys: index_loading once ($1), candidate ranking $1 / 100 docs → $0.01 per doc
    assert ex["searchkeys"].per_doc_dollars == pytest.approx(0.01)
    assert ex["searchkeys"].dollars == pytest.approx(1.0 + 1000 * 0.01)
    assert ex["searchkeys"].seconds == pytest.approx(10.0 + 1000 * 0.1)
    assert ex["searchkeys"].kwh == pytest.approx(0.004 + 1000 * 0.00004)
    # bart: $2 / 10 docs; enrichment has no items and cannot be scaled
    assert ex["bart"].dollars == pytest.approx(1000 * 0.2)
    assert ex["bart"].skipped_stages == ["enrichment"] and ex["bart"].kwh is None


def test_items_in_another_unit_need_a_document_count() -> None:
    tr = CostTracker(carbon=False, device="cpu", price_per_hour=3600.0)
    with tr.stage("candidate_encoding", items=500, unit="phrases", documents=50):
        time.sleep(0.01)
    with tr.stage("document_encoding", items=50):
        time.sleep(0.01)
    phrases, docs = tr.records
    assert (phrases.unit, phrases.items, phrases.documents, phrases.doc_count) == ("phrases", 500, 50, 50)
    assert (docs.unit, docs.doc_count) == ("documents", 50)
    recs = [
        StageRecord(stage="candidate_encoding", approach="sk", items=500, seconds=2.5, kwh=None, kg_co2=None,
                    dollars=0.25, device="cpu", estimated=False, unit="phrases", documents=50),
        StageRecord(stage="candidate_encoding", approach="sk", items=300, seconds=1.5, kwh=None, kg_co2=None,
                    dollars=0.15, device="cpu", estimated=False, unit="phrases", documents=50),
        StageRecord(stage="neighbour_retrieval", approach="sk", items=900, seconds=1.0, kwh=None, kg_co2=None,
                    dollars=0.1, device="cpu", estimated=False, unit="queries"),
    ]
    s = summarise(recs)
    enc = s.stages[1]
    assert (enc.stage, enc.items, enc.documents, enc.unit) == ("candidate_encoding", 800, 100, "phrases")
    assert enc.per_item(enc.dollars) == pytest.approx(0.0005) and enc.per_doc(enc.dollars) == pytest.approx(0.004)
    assert s.stages[0].documents is None  # queries without a document count
    ex = extrapolate(s, 10)[0]
    # $0.40 / 100 documents for encoding; neighbour retrieval cannot be scaled without a document count
    assert ex.per_doc_dollars == pytest.approx(0.004) and ex.dollars == pytest.approx(0.04)
    assert ex.skipped_stages == ["neighbour_retrieval"] and ex.per_doc_stages == ["candidate_encoding"]


def test_read_records_reports_the_bad_line(tmp_path: Path) -> None:
    good = _rec("searchkeys", "tokenisation", 1, 1.0, 0.1).to_json()
    (tmp_path / "cost.jsonl").write_text(json.dumps(good) + "\n" + '{"stage": "tokenisation"}\n')
    with pytest.raises(InputError) as e:
        list(read_records(tmp_path))
    assert e.value.line == 2 and "approach" in e.value.reason
    with pytest.raises(InputError, match="no cost log"):
        list(read_records(tmp_path / "nowhere"))
    rec = StageRecord.from_json(good)
    assert rec.host == HostFacts() and rec.seconds == 1.0


def test_codecarbon_offline_measures_a_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from codecarbon.input import DataSource

    def no_network(*a: object, **k: object) -> None:
        raise AssertionError("codecarbon tried the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    tr = CostTracker(log_dir=tmp_path, price_per_hour=2.89, carbon=True, country_iso="fra", approach="searchkeys",
                     device="cpu")
    with tr.stage("candidate_encoding", items=10):
        _busy(0.3)
    with tr.stage("candidate_ranking", items=10):
        _busy(0.1)
    r = tr.records[0]
    assert r.seconds >= 0.3 and r.kwh is not None and r.kwh > 0 and r.kg_co2 is not None and r.kg_co2 > 0
    assert r.country_iso == "FRA" and r.carbon_location == "FRA"
    # CO2 = energy × the French grid intensity of codecarbon's offline data (g/kWh → kg/kWh)
    intensity = DataSource().get_global_energy_mix_data()["FRA"]["carbon_intensity"] / 1000
    assert r.kg_co2 / r.kwh == pytest.approx(intensity, rel=1e-6)
    assert r.g_co2_per_kwh == pytest.approx(intensity * 1000) and r.grid == f"{intensity * 1000:.0f} g/kWh (FRA)"
    # estimated exactly when no CPU energy counter is read
    counters = any(m in r.energy_method for m in ("intel_rapl", "windows_emi", "powermetrics", "power_gadget"))
    assert r.estimated is (not counters)
    assert r.host.codecarbon_version and r.host.cpu_count > 0
    assert tr.totals()["searchkeys"].kwh == pytest.approx(sum(x.kwh for x in tr.records if x.kwh))
    logged = list(read_records(tmp_path))
    assert [x.kwh for x in logged] == [x.kwh for x in tr.records]


def test_a_failing_codecarbon_keeps_the_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import codecarbon

    def broken(*a: object, **k: object) -> None:
        raise RuntimeError("no sensors")

    monkeypatch.setattr(codecarbon, "OfflineEmissionsTracker", broken)
    tr = CostTracker(carbon=True, device="cpu", price_per_hour=3600.0)
    with tr.stage("bart_inference", items=2):
        time.sleep(0.02)
    r = tr.records[0]
    assert r.seconds >= 0.02 and r.dollars == pytest.approx(r.seconds)
    assert r.kwh is None and r.kg_co2 is None and r.estimated is False


def test_unknown_country_and_bad_log_dir_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="country"):
        CostTracker(carbon=True, country_iso="XXX")
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="cost log directory"):
        CostTracker(log_dir=tmp_path / "file" / "sub", carbon=False)


def test_missing_codecarbon_gives_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "codecarbon", None)  # `import codecarbon` now raises ImportError
    with pytest.raises(MissingExtraError) as e:
        CostTracker(carbon=True)
    assert "esrank[carbon]" in str(e.value) and "--no-carbon" in str(e.value)
    tr = CostTracker(carbon=False, device="cpu")  # time and dollars still work
    with tr.stage("tokenisation", items=1):
        pass
    assert tr.records[0].kwh is None


@click.command()
@cost_options
def _cmd(**kw: object) -> None:
    tr = tracker_from_options(kw, approach="bart")  # type: ignore[arg-type]
    assert kw == {}
    with tr.stage("bart_inference", items=2):
        time.sleep(0.01)
    r = tr.records[0]
    click.echo(json.dumps({"approach": r.approach, "price": r.price_per_hour, "carbon": tr.carbon,
                           "log": str(tr.log_file), "dollars_per_second": r.dollars / r.seconds}))


def test_cost_options_build_the_tracker(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(_cmd, [], env={"ESRANK_PRICE_PER_HOUR": "7.2"})
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out == {"approach": "bart", "price": 7.2, "carbon": False, "log": "None",
                   "dollars_per_second": pytest.approx(0.002)}
    res = runner.invoke(_cmd, ["--cost-log", str(tmp_path / "c"), "--no-carbon", "--approach", "bart-large"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["approach"] == "bart-large" and out["carbon"] is False and out["price"] == 2.89
    assert [r.approach for r in read_records(tmp_path / "c")] == ["bart-large"]


def test_without_a_location_co2_uses_codecarbons_world_average(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline, the location cannot be looked up: no --country-iso and no codecarbon configuration → world average.

    The SearchKeys paper's own figures (2.486 kg CO2 for 6.213 kWh) imply about 400 g/kWh, far from the French grid
    (56 g/kWh) that esrank used to assume and close to the world average.
    """
    from codecarbon.input import DataSource

    monkeypatch.delenv("CODECARBON_COUNTRY_ISO_CODE", raising=False)
    monkeypatch.delenv("ESRANK_COUNTRY_ISO", raising=False)
    monkeypatch.chdir(tmp_path)  # no .codecarbon.config here
    world = DataSource().get_carbon_intensity_per_source_data()["world_average"]
    tr = CostTracker(log_dir=tmp_path / "log", carbon=True, device="cpu")
    with tr.stage("candidate_ranking", items=3):
        _busy(0.2)
    r = tr.records[0]
    assert r.kwh and r.kg_co2 and r.kg_co2 / r.kwh == pytest.approx(world / 1000, rel=1e-6)
    assert (r.country_iso, r.g_co2_per_kwh, r.carbon_location) == (None, world, "world average")
    assert tr.summary().count(f"kg CO2 at {world:.0f} g CO2/kWh (world average)") == 1
    # the report tables print the intensity next to the CO2 figure
    from esrank.cost.tables import extrapolation_markdown, table3_markdown, table3_rows

    summary = summarise(read_records(tmp_path / "log"))
    row = table3_markdown(summary).splitlines()[2].split(" | ")
    assert row[7] == f"{world:.0f} (world average)"  # the column right after CO2
    assert table3_rows(summary)[0]["carbon_intensity"] == f"{world:.0f} g/kWh (world average)"
    assert f"| {world:.0f} (world average) |" in extrapolation_markdown(extrapolate(summary, 10))
    from esrank.cost.tables import per_document_lines

    assert per_document_lines(extrapolate(summary, 10))[0].endswith(f"; CO2 at {world:.0f} g/kWh (world average)")
    # codecarbon's own configuration names the location: its country's intensity is used
    monkeypatch.setenv("CODECARBON_COUNTRY_ISO_CODE", "DEU")
    tr = CostTracker(carbon=True, device="cpu")
    deu = DataSource().get_global_energy_mix_data()["DEU"]["carbon_intensity"]
    assert (tr.country_iso, tr.location, tr.intensity) == ("DEU", "DEU", pytest.approx(deu))
    assert CostTracker(carbon=True, device="cpu", country_iso="FRA").country_iso == "FRA"  # the option wins
    monkeypatch.setenv("CODECARBON_COUNTRY_ISO_CODE", "XXX")
    with pytest.raises(ConfigError, match="codecarbon configuration"):
        CostTracker(carbon=True, device="cpu")


def test_old_records_without_an_intensity_show_the_one_they_imply() -> None:
    rec = StageRecord.from_json({"stage": "tokenisation", "approach": "a", "seconds": 1.0, "dollars": 0.1,
                                 "kwh": 0.002, "kg_co2": 0.0001, "country_iso": "FRA"})
    assert rec.grid == "50 g/kWh (FRA)"
    assert summarise([rec]).stages[0].grids == ("50 g/kWh (FRA)",)
