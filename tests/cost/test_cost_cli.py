"""The paper's Table 3 rows for BM25 from the command line: `load` and `neighbours` with --cost-log, then `report`."""
from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from esrank.commands import main
from esrank.corpus import sample_corpus_path
from esrank.cost import read_records


def test_load_and_neighbours_fill_the_tokenisation_indexing_and_search_rows(tmp_path: Path) -> None:
    runner = CliRunner()
    cost, where = tmp_path / "cost", ["--index", "kp", "--path", str(tmp_path / "index")]
    r = runner.invoke(main, ["-q", "load", str(sample_corpus_path()), *where, "--cost-log", str(cost),
                             "--country-iso", "DEU"])
    assert r.exit_code == 0, r.output
    assert "kg CO2 at" in r.stderr.splitlines()[-1] and "g CO2/kWh (DEU)" in r.stderr.splitlines()[-1]
    r = runner.invoke(main, ["-q", "neighbours", str(sample_corpus_path()), *where, "-k", "3",
                             "--out", str(tmp_path / "pools.jsonl"), "--cost-log", str(cost), "--no-carbon"])
    assert r.exit_code == 0, r.output
    records = {rec.stage: rec for rec in read_records(cost)}
    assert list(records) == ["tokenisation", "index_loading", "neighbour_retrieval"]
    assert (records["tokenisation"].items, records["index_loading"].items,
            records["neighbour_retrieval"].items) == (90, 90, 90)
    assert all(rec.seconds > 0 and rec.approach == "searchkeys" for rec in records.values())
    assert records["tokenisation"].kg_co2 is not None and records["tokenisation"].carbon_location == "DEU"

    r = runner.invoke(main, ["report", "--cost-log", str(cost), "--out", str(tmp_path / "report")])
    assert r.exit_code == 0, r.output
    rows = json.loads((tmp_path / "report" / "table3_cost.json").read_text())
    rows = rows["rows"] if isinstance(rows, dict) else rows
    got = {row["stage"]: row for row in rows}
    for stage in ("tokenisation", "index_loading", "neighbour_retrieval"):
        assert got[stage]["seconds"] > 0 and got[stage]["runs"] == 1
    assert got["tokenisation"]["carbon_intensity"].endswith("g/kWh (DEU)")
    assert got["neighbour_retrieval"]["kg_co2"] is None  # run with --no-carbon
    md = (tmp_path / "report" / "report.md").read_text()
    assert "| searchkeys | tokenisation |" in md and "| searchkeys | neighbour_retrieval |" in md
