"""Probes of issue 14 on the command line: same-path outputs, failed runs keep old outputs, stdin, bad inputs."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

from click.testing import CliRunner

from esrank.commands import main
from esrank.corpus import sample_corpus_path


def _docs(path: Path, n: int = 30) -> Path:
    lines = [json.dumps({"id": f"d{i}", "title": f"title {i} about topic {i % 3}", "abstract": f"text {i} words",
                         "keyphrases": [f"topic {i % 3}", f"kp {i}"]}) for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _embedded(tmp_path: Path) -> list[str]:
    return ["--index", "kp", "--path", str(tmp_path / "ix")]


def test_load_rejects_onto_the_input_is_refused(tmp_path: Path) -> None:
    data = _docs(tmp_path / "d.jsonl")
    before = data.read_bytes()
    r = CliRunner().invoke(main, ["-q", "load", str(data), *_embedded(tmp_path), "--on-error", "skip",
                                  "--rejects", str(data)])
    assert r.exit_code == 2 and data.read_bytes() == before
    assert r.stderr.strip() == (f"esrank: error: {data}: --rejects is the same file as the input DATA; writing it "
                                "would destroy the input: choose another output path")
    assert not (tmp_path / "ix").exists()  # refused before anything was opened


def test_loading_the_dead_letter_file_again_does_not_truncate_it(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Issue 14 item 2: `esrank load kp.failed.jsonl --index kp` truncated the file it was reading."""
    monkeypatch.chdir(tmp_path)
    dlq = _docs(tmp_path / "kp.failed.jsonl", 50)
    before = dlq.read_bytes()
    r = CliRunner().invoke(main, ["-q", "load", "kp.failed.jsonl", *_embedded(tmp_path)])
    assert r.exit_code == 0, r.output
    assert dlq.read_bytes() == before and "indexed 50 (50 new)" in r.stderr
    r = CliRunner().invoke(main, ["-q", "load", "kp.failed.jsonl", *_embedded(tmp_path),
                                  "--dead-letter", str(dlq)])
    assert r.exit_code == 2 and "--dead-letter is the same file as the input" in r.stderr
    assert dlq.read_bytes() == before


def test_neighbours_out_onto_the_input_is_refused(tmp_path: Path) -> None:
    data = _docs(tmp_path / "d.jsonl")
    assert CliRunner().invoke(main, ["-q", "load", str(data), *_embedded(tmp_path)]).exit_code == 0
    before = data.read_bytes()
    r = CliRunner().invoke(main, ["-q", "neighbours", str(data), *_embedded(tmp_path), "--out", str(data)])
    assert r.exit_code == 2 and "--out is the same file as the input DATA" in r.stderr
    assert data.read_bytes() == before
    link = tmp_path / "link.jsonl"
    link.symlink_to(data)
    r = CliRunner().invoke(main, ["-q", "neighbours", str(link), *_embedded(tmp_path), "--out", str(data)])
    assert r.exit_code == 2 and data.read_bytes() == before


def test_load_reads_stdin(tmp_path: Path) -> None:
    data = _docs(tmp_path / "d.jsonl")
    r = CliRunner().invoke(main, ["-q", "load", "-", *_embedded(tmp_path)], input=data.read_bytes())
    assert r.exit_code == 0, r.output
    assert "indexed 30 (30 new)" in r.stderr


def test_truncated_gzip_stops_the_load_and_says_what_was_indexed(tmp_path: Path) -> None:
    """Issue 14 item 10: a truncated .gz left documents indexed without saying so, with a traceback."""
    body = "".join(json.dumps({"id": f"d{i}", "title": f"title {i}", "abstract": "words " * 20,
                               "keyphrases": ["kp"]}) + "\n" for i in range(3000)).encode()
    whole = gzip.compress(body)
    data = tmp_path / "t.jsonl.gz"
    data.write_bytes(whole[: len(whole) // 2])
    r = CliRunner().invoke(main, ["-q", "load", str(data), *_embedded(tmp_path), "--batch-size", "100"])
    assert r.exit_code == 2 and "Traceback" not in r.output
    line = r.stderr.strip()
    assert line.startswith(f"esrank: error: {data}:") and "truncated compressed data" in line
    assert "the load stopped there" in line and "--resume" in line
    indexed = int(line.split("documents read before were indexed")[0].rsplit("the ", 1)[1])
    assert 0 < indexed < 3000 and f"holds {indexed}" in line


def test_failed_rank_keeps_the_previous_predictions(tmp_path: Path) -> None:
    """Issue 14 item 4: a failed `rank` truncated the previous predictions."""
    assert CliRunner().invoke(main, ["-q", "load", str(_docs(tmp_path / "d.jsonl")), *_embedded(tmp_path)]).exit_code == 0
    keep = tmp_path / "keep.jsonl"
    keep.write_text('{"id": "x", "keyphrases": ["old"]}\n')
    r = CliRunner().invoke(main, ["-q", "rank", str(tmp_path / "missing.jsonl"), *_embedded(tmp_path),
                                  "--method", "vote", "--out", str(keep)])
    assert r.exit_code == 2 and "no such file" in r.stderr
    assert keep.read_text() == '{"id": "x", "keyphrases": ["old"]}\n'
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".keep")] == []  # no temporary file left


def test_rank_out_onto_the_input_is_refused_and_stdin_works(tmp_path: Path) -> None:
    """Issue 14 item 3: `esrank rank s.jsonl ... --out s.jsonl` wiped the input."""
    data = _docs(tmp_path / "s.jsonl")
    assert CliRunner().invoke(main, ["-q", "load", str(data), *_embedded(tmp_path)]).exit_code == 0
    before = data.read_bytes()
    r = CliRunner().invoke(main, ["-q", "rank", str(data), *_embedded(tmp_path), "--method", "vote",
                                  "--out", str(data)])
    assert r.exit_code == 2 and "--out is the same file as the input DATA" in r.stderr
    assert data.read_bytes() == before
    out = tmp_path / "p.jsonl"
    r = CliRunner().invoke(main, ["-q", "rank", "-", *_embedded(tmp_path), "--method", "vote", "--out", str(out)],
                           input=before)
    assert r.exit_code == 0, r.output
    assert len(out.read_text().splitlines()) == 30


def test_sample_corpus_is_untouched_by_stats(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["stats", str(sample_corpus_path()), "--format", "json", "-q"])
    assert r.exit_code == 0 and json.loads(r.stdout)[0]["documents"] == 90


def test_data_option_is_a_deprecated_spelling_of_the_argument(tmp_path: Path) -> None:
    data = _docs(tmp_path / "d.jsonl")
    out = tmp_path / "th.json"
    r = CliRunner().invoke(main, ["vocab", "from-keyphrases", "--data", str(data), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "esrank: warning: --data is deprecated" in r.stderr and out.exists()
    r = CliRunner().invoke(main, ["vocab", "from-keyphrases", str(data), "--out", str(out)])
    assert r.exit_code == 0 and "deprecated" not in r.stderr
    r = CliRunner().invoke(main, ["vocab", "from-keyphrases", str(data), "--data", str(data), "--out", str(out)])
    assert r.exit_code == 2 and "give the input documents once" in r.stderr


def test_eval_retrieval_names_its_index_target_index_and_offers_no_embedded_backend(tmp_path: Path) -> None:
    topics, qrels = tmp_path / "t.tsv", tmp_path / "q.txt"
    topics.write_text("1\tquery\n")
    qrels.write_text("1 0 d1 1\n")
    args = ["eval-retrieval", "--topics", str(topics), "--qrels", str(qrels)]
    r = CliRunner().invoke(main, [*args, "--target-index", "papers", "--backend", "embedded"])
    assert r.exit_code == 2 and "'embedded' is not one of" in r.stderr
    r = CliRunner().invoke(main, ["eval-retrieval", "--help"])
    assert "--target-index" in r.output and "ESRANK_TARGET_INDEX" in r.output and "embedded|" not in r.output
    r = CliRunner().invoke(main, [*args, "--index", "papers", "--url", "http://127.0.0.1:9", "--max-retries", "0",
                                  "--timeout", "1"], env={"ESRANK_INDEX": "training"})
    assert "esrank: warning: --index is deprecated for this command" in r.stderr and "Traceback" not in r.output
    r = CliRunner().invoke(main, [*args, "--url", "http://127.0.0.1:9"], env={"ESRANK_INDEX": "training"})
    assert r.exit_code == 2 and "Missing option '--target-index'" in r.stderr  # ESRANK_INDEX is the training index


def test_rank_accepts_a_numbered_cuda_device_spelling(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["rank", "--help"])
    assert "cuda:N" in r.output
    data = _docs(tmp_path / "d.jsonl")
    r = CliRunner().invoke(main, ["-q", "rank", str(data), *_embedded(tmp_path), "--device", "gpu0"])
    assert r.exit_code == 2 and "not a device" in r.stderr


def test_empty_input_is_warned_by_load_and_neighbours(tmp_path: Path) -> None:
    """Issue 14 item 11: empty input exited 0 with "read 0" and no warning."""
    empty = tmp_path / "e.jsonl"
    empty.write_text("")
    r = CliRunner().invoke(main, ["-q", "load", str(empty), *_embedded(tmp_path)])
    assert r.exit_code == 0 and f"esrank: warning: {empty}: the input holds no documents" in r.stderr
    assert CliRunner().invoke(main, ["-q", "load", str(_docs(tmp_path / "d.jsonl")), *_embedded(tmp_path)]).exit_code == 0
    r = CliRunner().invoke(main, ["-q", "neighbours", "-", *_embedded(tmp_path), "--out", str(tmp_path / "p.jsonl")],
                           input=b"")
    assert r.exit_code == 0 and "esrank: warning: stdin: the input holds no documents" in r.stderr


def test_option_decorators_hand_commands_ready_objects(tmp_path: Path) -> None:
    import click

    from esrank.commands.common import documents_input
    from esrank.commands.retrieval import backend_options
    from esrank.corpus import DocumentReader
    from esrank.cost import CostTracker, cost_options
    from esrank.retrieval.factory import BackendOptions

    @click.command()
    @documents_input()
    @backend_options
    @cost_options(approach="bart")
    def cmd(data: str, reader: DocumentReader, options: BackendOptions, tracker: CostTracker) -> None:
        assert isinstance(reader, DocumentReader) and isinstance(options, BackendOptions)
        click.echo(f"{data} {reader.fields.keyphrase_sep} {reader.on_error} {options.index} {tracker.approach}")

    r = CliRunner().invoke(cmd, ["-", "--index", "kp", "--keyphrase-sep", "|", "--on-error", "skip"])
    assert r.exit_code == 0, r.output
    assert r.output.strip() == "- | skip kp bart"
    r = CliRunner().invoke(cmd, ["d.jsonl", "--index", "kp", "--approach", "mine"])
    assert r.output.strip().endswith("kp mine")
