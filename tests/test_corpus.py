import json

import pytest

from esrank.corpus import Fields, ReadStats, RejectSink, read_documents, write_documents, Document
from esrank.errors import InputError


def write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_jsonl_fields_dedupe_and_meta(tmp_path):
    p = write(tmp_path / "d.jsonl", [
        json.dumps({"id": 7, "title": " T ", "abstract": "text", "keyphrases": [" A b", "a B", "", "c"], "domain": "x"}),
        json.dumps({"title": "only title", "keywords": []}),
    ])
    docs = list(read_documents(p))
    assert docs[0].id == "7" and docs[0].title == "T" and docs[0].keyphrases == ["A b", "c"]
    assert docs[0].meta == {"domain": "x"}
    assert docs[1].id.startswith("sha1:") and docs[1].text == "" and docs[1].keyphrases == []
    again = list(read_documents(p))
    assert again[1].id == docs[1].id  # content ids are stable


@pytest.mark.parametrize("line,reason", [
    ('{"title": "x", "keyphrases": "not a list"}', "must be a list of strings"),
    ('{"keyphrases": ["a"]}', "missing text field"),
    ('{"title": "x", ', "malformed JSON"),
    ('[1, 2]', "must be a JSON object"),
    ('{"title": 5}', "must be a string"),
])
def test_bad_records_fail_with_file_and_line(tmp_path, line, reason):
    p = write(tmp_path / "bad.jsonl", ['{"title": "ok", "abstract": "fine"}', line])
    with pytest.raises(InputError) as e:
        list(read_documents(p))
    assert e.value.line == 2 and reason in e.value.reason and str(p) in e.value.one_line()


def test_skip_counts_and_writes_rejects(tmp_path):
    p = tmp_path / "mixed.jsonl"
    p.write_bytes(b'{"title": "ok", "abstract": "fine"}\n{"title": "caf\xe9"}\n{broken\n'
                  b'{"id": "1", "title": "a"}\n{"id": "1", "title": "b"}\n')
    stats = ReadStats()
    rej = tmp_path / "rejects.jsonl"
    with RejectSink(rej) as sink:
        docs = list(read_documents(p, on_error="skip", rejects=sink, stats=stats))
    assert [d.title for d in docs] == ["ok", "a"]
    assert (stats.read, stats.kept, stats.skipped) == (5, 2, 3)
    rejected = [json.loads(x) for x in rej.read_text().splitlines()]
    assert [r["line"] for r in rejected] == [2, 3, 5]
    assert "invalid UTF-8" in rejected[0]["reason"] and "duplicate id" in rejected[2]["reason"]


def test_require_keyphrases(tmp_path):
    p = write(tmp_path / "d.jsonl", ['{"title": "x"}'])
    with pytest.raises(InputError, match="missing keyphrase field"):
        list(read_documents(p, fields=Fields(require_keyphrases=True)))


def test_csv_tsv_with_separator_and_custom_fields(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text('doc,heading,body,kws\n1,"A, title",some text,"x; y ;;X"\n2,b,c,\n', encoding="utf-8")
    f = Fields.from_options("doc", "heading", "body", "kws", ";")
    docs = list(read_documents(p, fields=f))
    assert docs[0].title == "A, title" and docs[0].keyphrases == ["x", "y"] and docs[1].keyphrases == []
    t = tmp_path / "d.tsv"
    t.write_text("id\ttitle\tabstract\tkeyphrases\n1\tt\ta\tp|q\n2\tonly\n", encoding="utf-8")
    stats = ReadStats()
    docs = list(read_documents(t, fields=Fields(keyphrase_sep="|"), on_error="skip", stats=stats))
    assert docs[0].keyphrases == ["p", "q"] and stats.skipped == 1


def test_parquet_kp20k_layout(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.table({"id": ["a", "b"], "title": ["T1", "T2"], "abstract": ["x", "y"],
                      "keyphrases": [["k1", "k2"], ["k3"]], "prmu": [["P", "U"], ["M"]]})
    pq.write_table(table, tmp_path / "kp.parquet")
    docs = list(read_documents(tmp_path / "kp.parquet"))
    assert [d.keyphrases for d in docs] == [["k1", "k2"], ["k3"]] and docs[0].meta["prmu"] == ["P", "U"]


def test_gzip_and_roundtrip(tmp_path):
    import gzip

    docs = [Document("1", "t", "x", ["k"], {"domain": "d"})]
    write_documents(docs, tmp_path / "o.jsonl")
    with gzip.open(tmp_path / "o.jsonl.gz", "wb") as fh:
        fh.write((tmp_path / "o.jsonl").read_bytes())
    assert list(read_documents(tmp_path / "o.jsonl.gz")) == docs


def test_missing_file_and_unknown_format(tmp_path):
    from esrank.errors import ConfigError

    with pytest.raises(InputError, match="no such file"):
        list(read_documents(tmp_path / "nope.jsonl"))
    (tmp_path / "x.weird").write_text("")
    with pytest.raises(ConfigError, match="cannot tell the format"):
        list(read_documents(tmp_path / "x.weird"))


def test_streaming_does_not_read_ahead(tmp_path):
    p = write(tmp_path / "d.jsonl", ['{"title": "a"}', '{"title": "b"}', "{broken"])
    it = read_documents(p)
    assert next(it).title == "a" and next(it).title == "b"  # the bad third line is not read yet
    with pytest.raises(InputError):
        next(it)


def test_csv_bad_byte_points_at_its_line_and_costs_only_that_row(tmp_path):
    """Issue 14 item 5: one bad byte in a CSV used to lose the whole file and point at line 1."""
    rows = [b"id,title,abstract,keyphrases"] + [f"{i},t{i},text {i},k{i}".encode() for i in range(1, 11)]
    rows[5] = b"5,t5,caf\xe9 latte,k5"  # latin-1 byte on line 6
    p = tmp_path / "d.csv"
    p.write_bytes(b"\n".join(rows) + b"\n")
    with pytest.raises(InputError, match=r"d.csv:6: invalid UTF-8"):
        list(read_documents(p))
    stats, rejects = ReadStats(), tmp_path / "rejects.jsonl"
    with RejectSink(rejects) as sink:
        docs = list(read_documents(p, on_error="skip", rejects=sink, stats=stats))
    assert [d.id for d in docs] == ["1", "2", "3", "4", "6", "7", "8", "9", "10"]
    assert (stats.read, stats.kept, stats.skipped) == (10, 9, 1)
    assert [json.loads(x)["line"] for x in rejects.read_text().splitlines()] == [6]


def test_csv_quoted_newline_keeps_true_line_numbers(tmp_path):
    p = tmp_path / "d.csv"
    p.write_bytes(b'id,title,abstract\n1,"two\nlines",x\n2,t,\xff\n3,t,y\n')
    stats = ReadStats()
    docs = list(read_documents(p, on_error="skip", stats=stats))
    assert [d.id for d in docs] == ["1", "3"] and docs[0].title == "two\nlines"
    with pytest.raises(InputError, match=r"d.csv:4: invalid UTF-8"):
        list(read_documents(p))


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".xz"])
def test_corrupt_and_truncated_compressed_inputs_are_one_error(tmp_path, suffix):
    """Issue 14 item 10: corrupt or truncated .gz/.bz2/.xz gave tracebacks."""
    import bz2
    import gzip
    import lzma

    compress = {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress}[suffix]
    body = "".join(json.dumps({"id": str(i), "title": f"title {i}", "abstract": "x" * 50}) + "\n"
                   for i in range(2000)).encode()
    whole = compress(body)
    truncated = tmp_path / f"t.jsonl{suffix}"
    truncated.write_bytes(whole[: len(whole) // 2])
    seen = []
    with pytest.raises(InputError, match="truncated|corrupt") as e:
        for d in read_documents(truncated):
            seen.append(d.id)
    assert str(truncated) in str(e.value) and len(seen) < 2000 and (suffix == ".bz2" or seen)  # bz2: one block
    assert f":{len(seen) + 1}:" in str(e.value)  # the line after the last one read
    corrupt = tmp_path / f"c.jsonl{suffix}"
    corrupt.write_bytes(whole[:10] + b"\x00garbage" * 50)
    with pytest.raises(InputError, match="corrupt|truncated"):
        list(read_documents(corrupt))


def test_stdin_and_content_sniffing(tmp_path, monkeypatch):
    import gzip
    import io
    import sys

    lines = "".join(json.dumps({"id": str(i), "title": f"t{i}"}) + "\n" for i in range(3)).encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(lines)))
    assert [d.id for d in read_documents("-")] == ["0", "1", "2"]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(gzip.compress(b"id\ttitle\nx\ty\n"))))
    assert [(d.id, d.title) for d in read_documents("-")] == [("x", "y")]
    noname = tmp_path / "documents"
    noname.write_bytes(lines)
    assert len(list(read_documents(noname))) == 3


def test_empty_keyphrase_separator_is_an_error():
    """Issue 14 item 10: --keyphrase-sep "" gave a ValueError traceback."""
    from esrank.errors import ConfigError

    with pytest.raises(ConfigError, match="keyphrase-sep must not be empty"):
        Fields.from_options(keyphrase_sep="")


def test_document_reader_counts_each_input_and_warns_on_empty(tmp_path):
    from esrank.corpus import DocumentReader

    a = write(tmp_path / "a.jsonl", ['{"title": "a"}', "{bad"])
    empty = tmp_path / "e.jsonl"
    empty.write_text("")
    with DocumentReader(on_error="skip", rejects=str(tmp_path / "r.jsonl")) as reader:
        assert len(list(reader.read(a))) == 1 and list(reader.read(empty)) == []
    lines = reader.summaries()
    assert lines[0] == f"{a}: read 2, kept 1, skipped 1 (malformed JSON: 1)"
    assert f"esrank: warning: {empty}: the input holds no documents" in lines
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 1
