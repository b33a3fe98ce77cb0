"""The report: Tables 1-3 as Markdown, CSV and JSON, the plots, and the `esrank report` command."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from esrank.corpus import Document, write_documents
from esrank.cost import StageRecord, append_record
from esrank.errors import ConfigError
from esrank.evaluation.report import write_report


def _rec(approach: str, stage: str, items: int, seconds: float, dollars: float, kwh: float | None,
         kg: float | None, estimated: bool = True) -> StageRecord:
    return StageRecord(stage=stage, approach=approach, items=items, seconds=seconds, kwh=kwh, kg_co2=kg,
                       dollars=dollars, device="cpu", estimated=estimated, price_per_hour=2.89, country_iso="FRA",
                       energy_method="ram:model,cpu:cpu_load")


RECORDS = [
    _rec("searchkeys", "index_loading", 100, 36.0, 0.0289, 0.001, 0.00005),
    _rec("searchkeys", "candidate_ranking", 20, 72.0, 0.0578, 0.002, 0.0001),
    _rec("bart", "bart_training", 100, 3600.0, 2.89, 0.1, 0.005),
    _rec("bart", "bart_inference", 20, 360.0, 0.289, 0.01, 0.0005),
]

GOLD = [
    Document("d1", "Neural ranking of scientific keyphrases", "We rank keyphrases with neural networks.",
             ["neural ranking", "keyphrases", "graph mining"]),
    Document("d2", "Carbon accounting for language models", "We measure energy use.",
             ["carbon accounting", "energy", "graph mining"]),
]
SYSTEMS = {
    "searchkeys": {"d1": ["neural ranking", "keyphrases", "graph mining"],
                   "d2": ["carbon accounting", "energy", "graph mining"]},
    "bart": {"d1": ["neural ranking", "deep learning"], "d2": ["carbon accounting"]},
}


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _check_png(path: Path) -> None:
    import matplotlib.image as mpimg

    img = mpimg.imread(path)
    assert img.shape[0] >= 300 and img.shape[1] >= 500
    rgb = img[..., :3]
    drawn = np.any(rgb < 0.9, axis=-1).mean()  # share of pixels that are not (near) white
    assert drawn > 0.02
    assert len({tuple(np.round(p, 2)) for p in rgb.reshape(-1, 3)[::37]}) > 4  # several colours, not one


def test_cost_tables_rows_and_plot(tmp_path: Path) -> None:
    files = write_report(tmp_path / "out", records=RECORDS, documents=1000)
    out = tmp_path / "out"
    rows = _csv(out / "table3_cost.csv")
    assert [(r["approach"], r["stage"]) for r in rows] == [
        ("searchkeys", "index_loading"), ("searchkeys", "candidate_ranking"), ("searchkeys", "total"),
        ("bart", "bart_training"), ("bart", "bart_inference"), ("bart", "total")]
    total = rows[2]
    assert float(total["seconds"]) == pytest.approx(108.0)
    assert float(total["dollars"]) == pytest.approx(0.0867)
    assert float(total["kwh"]) == pytest.approx(0.003)
    assert float(rows[1]["dollars_per_item"]) == pytest.approx(0.00289)
    assert float(rows[1]["dollars_per_doc"]) == pytest.approx(0.00289)  # the items are documents
    assert total["items"] == ""  # items of different stages are not summed into a document count
    js = json.loads((out / "table3_cost.json").read_text())
    assert js[5]["stage"] == "total" and js[5]["dollars"] == pytest.approx(3.179)
    ex = {r["approach"]: r for r in json.loads((out / "extrapolation.json").read_text())}
    # searchkeys: index_loading once ($0.0289) + 1000 × candidate ranking ($0.0578 / 20 = $0.00289)
    assert ex["searchkeys"]["dollars"] == pytest.approx(0.0289 + 1000 * 0.00289)
    assert ex["searchkeys"]["hours"] == pytest.approx((36 + 1000 * 3.6) / 3600)
    assert ex["bart"]["dollars"] == pytest.approx(2.89 + 1000 * 0.289 / 20)
    assert ex["bart"]["kg_co2"] == pytest.approx(0.005 + 1000 * 0.0005 / 20)
    md = files.markdown.read_text()
    assert "## Table 3" in md and "Table 1" not in md and "Table 2" not in md
    assert "| **searchkeys** | **total** |" in md
    assert "searchkeys: 3.60 s, $0.00289, 1.00e-04 kWh, 5.00e-06 kg CO2* per document (candidate_ranking)" in md
    assert "Extrapolation to 1,000 documents" in md
    assert "*estimates*" in md  # the records say the energy is estimated; the report says so
    assert out / "cost_stages.png" in files.plots
    _check_png(out / "cost_stages.png")


def test_items_in_their_unit_and_cost_per_document(tmp_path: Path) -> None:
    rec = _rec("searchkeys", "candidate_encoding", 400, 36.0, 0.0289, None, None, estimated=False)
    rec.unit, rec.documents = "phrases", 20
    files = write_report(tmp_path, records=[rec], documents=10)
    row = _csv(tmp_path / "table3_cost.csv")[0]
    assert (row["items"], row["unit"], row["documents"]) == ("400", "phrases", "20")
    assert float(row["dollars_per_item"]) == pytest.approx(0.0289 / 400)
    assert float(row["dollars_per_doc"]) == pytest.approx(0.0289 / 20)
    assert "| searchkeys | candidate_encoding | 1 | 400 phrases | 36.0 |" in files.markdown.read_text()


def test_no_carbon_records_say_time_and_dollars_only(tmp_path: Path) -> None:
    recs = [_rec("searchkeys", "candidate_ranking", 10, 3.6, 0.00289, None, None, estimated=False)]
    files = write_report(tmp_path, records=recs, documents=10)
    md = files.markdown.read_text()
    assert "not measured" in md and "*estimates*" not in md
    row = _csv(tmp_path / "table3_cost.csv")[0]
    assert row["kwh"] == "" and float(row["dollars"]) == pytest.approx(0.00289)
    _check_png(tmp_path / "cost_stages.png")


def test_prmu_table_markers_and_ratios(tmp_path: Path) -> None:
    files = write_report(tmp_path, gold_docs=GOLD, systems=SYSTEMS, corpora={"tiny": GOLD}, rounds=200)
    rows = _csv(tmp_path / "table2_prmu.csv")
    get = {(r["system"], r["metric"]): r for r in rows if r["group"] == "all"}
    assert float(get[("searchkeys", "P_F1@Q")]["value"]) == pytest.approx(1.0)
    # bart finds 1 of the 2 present keyphrases with 1 present prediction: P = 1, R = 1/2, F1 = 2/3, in both docs
    assert float(get[("bart", "P_F1@Q")]["value"]) == pytest.approx(2 / 3)
    assert float(get[("bart", "P_F1@Q")]["ratio_to_baseline"]) == pytest.approx(2 / 3)
    assert float(get[("bart", "U_R@Q")]["value"]) == 0.0
    # two documents cannot make a difference significant: no marker
    assert get[("bart", "P_F1@Q")]["marker"] == ""
    assert float(get[("bart", "P_F1@Q")]["p_randomization"]) > 0.05
    t1 = _csv(tmp_path / "table1_corpus.csv")
    assert t1[0]["corpus"] == "tiny" and t1[0]["documents"] == "2"
    md = files.markdown.read_text()
    assert "## Table 1" in md and "## Table 2" in md and "Ratios to searchkeys" in md
    assert "without prediction" not in md  # both systems predicted every gold document
    assert "| bart | 0.667 |" in md
    _check_png(tmp_path / "prmu.png")


def test_missing_predictions_are_counted(tmp_path: Path) -> None:
    systems = {"searchkeys": SYSTEMS["searchkeys"], "bart": {"d1": ["neural ranking"], "d9": ["x"]}}
    files = write_report(tmp_path, gold_docs=GOLD, systems=systems, rounds=50)
    md = files.markdown.read_text()
    assert "- bart: 1 gold documents without prediction (scored as empty), 1 predicted ids not in the gold file" in md


def test_report_needs_inputs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nothing to report"):
        write_report(tmp_path)
    with pytest.raises(ConfigError, match="--gold"):
        write_report(tmp_path, systems=SYSTEMS)


def test_report_command_writes_the_three_tables(tmp_path: Path) -> None:
    from esrank.commands import main

    for r in RECORDS:
        append_record(tmp_path / "cost", r)
    gold = tmp_path / "gold.jsonl"
    write_documents(GOLD, gold)
    preds = []
    for name, sys_preds in SYSTEMS.items():
        p = tmp_path / f"{name}.jsonl"
        p.write_text("".join(json.dumps({"id": i, "keyphrases": k}) + "\n" for i, k in sys_preds.items()))
        preds += ["--pred", str(p)]
    out = tmp_path / "report"
    res = CliRunner().invoke(main, ["report", "--cost-log", str(tmp_path / "cost"), "--gold", str(gold), *preds,
                                    "--data", str(gold), "--out", str(out), "--rounds", "100",
                                    "--documents", "35000000"])
    assert res.exit_code == 0, res.output
    for name in ("report.md", "table1_corpus.csv", "table2_prmu.json", "table3_cost.csv", "extrapolation.csv",
                 "prmu.png", "cost_stages.png"):
        assert (out / name).exists(), name
        assert str(out / name) in res.output
    md = (out / "report.md").read_text()
    assert all(f"## Table {i}" in md for i in (1, 2, 3)) and "35,000,000 documents" in md
    # a bad cost log is one clear error line
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "cost.jsonl").write_text("not json\n")
    res = CliRunner().invoke(main, ["report", "--cost-log", str(tmp_path / "bad"), "--out", str(out)])
    assert res.exit_code == 2
    assert "esrank: error:" in res.output and "cost.jsonl:1: bad cost record" in res.output
