"""Input paths through the CLI (issue 18): --on-error skip for Parquet and CSV, corrupt Parquet files, CSV parse
errors and .bz2/.xz inputs, each loaded into an embedded index by `esrank load`."""
from __future__ import annotations

import bz2
import json
import lzma
from pathlib import Path

import pytest
from click.testing import CliRunner

from esrank.commands import main


def _load(path: Path, tmp_path: Path, *extra: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["-q", "load", str(path), "--index", "kp", "--path", str(tmp_path / "ix"),
                                     "--overwrite", *extra])


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("esrank: error: ") and "Traceback" not in stderr, stderr
    return lines[0]


def test_parquet_on_error_skip_counts_and_rejects(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.table({"id": ["a", "b", "c", "d"], "title": ["T1", None, "T3", "T4"],
                      "abstract": ["x", None, "z", "w"], "keyphrases": [["k"], ["j"], ["l"], ["m"]]})
    data = tmp_path / "d.parquet"
    pq.write_table(table, data)
    r = _load(data, tmp_path)
    line = _one_error_line(r.stderr)
    assert r.exit_code == 2 and line.startswith(f"esrank: error: {data}:2: missing text field")
    rejects = tmp_path / "rejects.jsonl"
    r = _load(data, tmp_path, "--on-error", "skip", "--rejects", str(rejects))
    assert r.exit_code == 0, r.output
    assert "read 4, indexed 3 (3 new), skipped 1 (1 bad records" in r.stderr
    rejected = [json.loads(x) for x in rejects.read_text().splitlines()]
    assert [(x["line"], json.loads(x["raw"])["id"]) for x in rejected] == [(2, "b")]
    assert "missing text field" in rejected[0]["reason"]


def test_csv_on_error_skip_and_parse_errors(tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    data.write_text("id,title,abstract\n1,ok,x\n2,\"" + "a" * 200_000 + "\",y\n3,t,z\n4,only\n5,t,w\n",
                    encoding="utf-8")
    r = _load(data, tmp_path)
    line = _one_error_line(r.stderr)
    assert r.exit_code == 2 and line.startswith(f"esrank: error: {data}:3: malformed CSV: field larger than")
    rejects = tmp_path / "rejects.jsonl"
    r = _load(data, tmp_path, "--on-error", "skip", "--rejects", str(rejects))
    assert r.exit_code == 0, r.output
    assert "read 5, indexed 3 (3 new), skipped 2 (2 bad records" in r.stderr
    rejected = [json.loads(x) for x in rejects.read_text().splitlines()]
    assert [x["line"] for x in rejected] == [3, 5]
    assert rejected[0]["reason"].startswith("malformed CSV") and rejected[1]["reason"] == "expected 3 columns, got 2"
    assert rejected[1]["raw"] == "4,only"


def test_corrupt_parquet_is_one_line(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"PAR1" + b"\x00" * 100 + b"PAR1")  # magic bytes, no readable footer
    r = _load(garbage, tmp_path)
    assert r.exit_code == 2 and "not a readable Parquet file" in _one_error_line(r.stderr)
    n = 3000  # a valid footer over a damaged data page: the error comes while the rows are read
    table = pa.table({"id": [str(i) for i in range(n)], "title": [f"title {i} " * 5 for i in range(n)],
                      "abstract": [f"abstract {i} " * 20 for i in range(n)]})
    whole = tmp_path / "whole.parquet"
    pq.write_table(table, whole, compression="snappy", row_group_size=1000)
    body = bytearray(whole.read_bytes())
    middle = len(body) // 2
    body[middle:middle + 2000] = b"\xab" * 2000
    damaged = tmp_path / "damaged.parquet"
    damaged.write_bytes(bytes(body))
    r = _load(damaged, tmp_path)
    line = _one_error_line(r.stderr)
    assert r.exit_code == 2 and f"esrank: error: {damaged}:" in line and "corrupt Parquet data" in line


@pytest.mark.parametrize("suffix,compress", [(".bz2", bz2.compress), (".xz", lzma.compress)])
def test_bz2_and_xz_inputs_load_every_document(tmp_path: Path, suffix: str, compress) -> None:  # type: ignore[no-untyped-def]
    records = [{"id": f"d{i}", "title": f"title {i}", "abstract": f"text about {i}", "keyphrases": [f"kp {i}"]}
               for i in range(25)]
    data = tmp_path / f"d.jsonl{suffix}"
    data.write_bytes(compress("".join(json.dumps(x) + "\n" for x in records).encode()))
    r = _load(data, tmp_path)
    assert r.exit_code == 0, r.output
    assert "read 25, indexed 25 (25 new), skipped 0" in r.stderr
    csv_data = tmp_path / f"d.csv{suffix}"
    csv_data.write_bytes(compress(b"id,title,abstract\nc1,first,one\nc2,second,two\n"))
    r = _load(csv_data, tmp_path)
    assert r.exit_code == 0 and "read 2, indexed 2 (2 new)" in r.stderr, r.output
