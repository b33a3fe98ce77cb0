"""† only on the all-documents table (issue 18): the paired tests run over all documents, so the per-domain tables
of `esrank evaluate` and of `esrank report` (report.md, table2_prmu.csv/json) carry no marker and no p-value."""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from esrank.commands import main


@pytest.fixture
def two_domains(tmp_path: Path) -> tuple[Path, Path, Path]:
    """40 gold documents in two domains; a system that finds every gold keyphrase and one that finds none."""
    gold, good, bad = [], [], []
    for i in range(40):
        kps = [f"topic{i} alpha", f"beta{i}", f"gamma {i} delta"]
        gold.append({"id": f"d{i}", "title": f"topic{i} alpha and beta{i}", "abstract": "some words here",
                     "keyphrases": kps, "domain": "cs" if i % 2 else "news"})
        good.append({"id": f"d{i}", "keyphrases": kps})
        bad.append({"id": f"d{i}", "keyphrases": ["nothing", "zzz"]})
    paths = []
    for name, rows in (("gold", gold), ("bad", bad), ("good", good)):
        p = tmp_path / f"{name}.jsonl"
        p.write_text("".join(json.dumps(r) + "\n" for r in rows))
        paths.append(p)
    return paths[0], paths[1], paths[2]


def _blocks(text: str) -> dict[str, str]:
    """Table title ('all', 'news', 'cs') → the table's text."""
    parts = re.split(r"^\**(all|news|cs) \(\d+ documents\)\**$", text, flags=re.M)
    return {parts[i]: parts[i + 1].split("\n\n\n")[0].split("Ratios")[0].split("| metric")[0].split("metric ")[0]
            for i in range(1, len(parts), 2)}


def test_evaluate_marks_only_the_all_documents_table(two_domains: tuple[Path, Path, Path]) -> None:
    gold, bad, good = two_domains
    for fmt in ("table", "markdown"):
        r = CliRunner().invoke(main, ["evaluate", "--gold", str(gold), "--pred", str(bad), "--pred", str(good),
                                      "--name", "bad", "--name", "good", "--rounds", "500", "--format", fmt])
        assert r.exit_code == 0, r.output
        blocks = _blocks(r.stdout)
        assert set(blocks) == {"all", "news", "cs"}
        assert blocks["all"].count("100.0†") == 3  # significant over all 40 documents (p < 0.01)
        assert "†" not in blocks["news"] and "†" not in blocks["cs"]
        assert blocks["news"].count("100.0") == 3  # the per-domain values are there, unmarked


def test_report_marks_only_the_all_documents_rows(two_domains: tuple[Path, Path, Path], tmp_path: Path) -> None:
    gold, bad, good = two_domains
    out = tmp_path / "report"
    r = CliRunner().invoke(main, ["-q", "report", "--gold", str(gold), "--pred", str(bad), "--pred", str(good),
                                  "--name", "bad", "--name", "good", "--rounds", "500", "--out", str(out)])
    assert r.exit_code == 0, r.output
    blocks = _blocks((out / "report.md").read_text())
    assert blocks["all"].count("100.0†") == 3 and "†" not in blocks["news"] + blocks["cs"]
    rows = list(csv.DictReader((out / "table2_prmu.csv").open()))
    marked = {(x["group"], x["system"], x["metric"]) for x in rows if x["marker"] == "†"}
    assert marked == {("all", "good", m) for m in ("P_F1@Q", "U_R@Q", "Abs_R@Q")}
    assert all(x["p_randomization"] == "" for x in rows if x["group"] != "all")
    data = json.loads((out / "table2_prmu.json").read_text())
    assert {(x["group"], x["system"], x["metric"]) for x in data if x["marker"]} == marked
    assert all(x["p_randomization"] is None for x in data if x["group"] != "all")
