"""Fault and bad-input probes of the embedded index: it owns its directory, one writer at a time, and every
partial state a crash can leave is rebuilt from the append-only document log."""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from esrank.commands import main
from esrank.corpus import Document, read_documents, sample_corpus_path
from esrank.errors import BackendError, ConfigError
from esrank.retrieval.embedded import LOCK, MARKER, EmbeddedBackend
from esrank.retrieval.loading import load_corpus

DOCS = list(read_documents(sample_corpus_path()))[:30]


def _write_jsonl(path: Path, docs: list[Document]) -> Path:
    path.write_text("".join(json.dumps({"id": d.id, "title": d.title, "abstract": d.text,
                                        "keyphrases": d.keyphrases}) + "\n" for d in docs))
    return path


def _load(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, ["load", *args, "--quiet"] if "--quiet" not in args else ["load", *args])
    return r.exit_code, r.output


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return _write_jsonl(tmp_path / "good.jsonl", DOCS)


@pytest.fixture
def built(tmp_path: Path) -> tuple[Path, list[list[str]]]:
    """An index of DOCS and the neighbours it gives."""
    path = tmp_path / "kp"
    b = EmbeddedBackend("kp", path)
    b.create()
    b.bulk_add(DOCS)
    return path, [[n.id for n in ns] for ns in b.neighbours(DOCS, 3, [{d.id} for d in DOCS])]


# -- the index owns its directory (issue 14 item 1) ------------------------------------------------

def test_overwrite_refuses_a_foreign_directory_with_a_manifest(tmp_path: Path, data: Path) -> None:
    v = tmp_path / "v"
    (v / "src").mkdir(parents=True)
    (v / "manifest.json").write_text('{"name": "app"}')
    (v / "src" / "keep.txt").write_text("x")
    code, out = _load(str(data), "--index", "kp", "--path", str(v), "--overwrite")
    assert code != 0 and out.strip().startswith("esrank: error:") and "not an esrank index" in out
    assert len(out.strip().splitlines()) == 1
    assert (v / "src" / "keep.txt").read_text() == "x" and sorted(os.listdir(v)) == ["manifest.json", "src"]


def test_no_writes_into_a_foreign_non_empty_directory(tmp_path: Path, data: Path) -> None:
    v = tmp_path / "v"
    v.mkdir()
    (v / "notes.txt").write_text("mine")
    code, out = _load(str(data), "--index", "kp", "--path", str(v))
    assert code != 0 and "not an esrank index" in out
    assert os.listdir(v) == ["notes.txt"]


def test_an_empty_directory_becomes_an_index_with_a_marker(tmp_path: Path, data: Path) -> None:
    v = tmp_path / "v"
    v.mkdir()
    code, out = _load(str(data), "--index", "kp", "--path", str(v))
    assert code == 0, out
    marker = json.loads((v / MARKER).read_text())
    assert marker == {"format": "esrank-embedded-index", "version": 1}
    code, out = _load(str(data), "--index", "kp", "--path", str(v), "--overwrite")  # ours: may be emptied
    assert code == 0, out
    b = EmbeddedBackend("kp", v)
    assert b.count() == len(DOCS)


def test_an_index_made_before_the_marker_still_opens_and_is_claimed(built: tuple[Path, list[list[str]]]) -> None:
    path, neighbours = built
    (path / MARKER).unlink()  # as written by esrank 0.x: manifest format 1 + document log, no marker
    b = EmbeddedBackend("kp", path)
    assert [[n.id for n in ns] for ns in b.neighbours(DOCS, 3, [{d.id} for d in DOCS])] == neighbours
    b.bulk_add([Document("new", "extra", "document")])
    assert (path / MARKER).exists() and b.count() == len(DOCS) + 1


def test_an_unknown_index_format_asks_for_a_rebuild(built: tuple[Path, list[list[str]]]) -> None:
    path, _ = built
    manifest = json.loads((path / "manifest.json").read_text())
    (path / "manifest.json").write_text(json.dumps({**manifest, "format": 99}))
    with pytest.raises(BackendError, match="rebuild it with esrank load --overwrite"):
        EmbeddedBackend("kp", path).open()


# -- one writer at a time (issue 14 item 7) --------------------------------------------------------

def test_a_second_writer_gets_a_clear_error_at_once(built: tuple[Path, list[list[str]]], data: Path) -> None:
    path, neighbours = built
    with open(path / LOCK, "a+") as held:  # another process's writer holds the lock
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        code, out = _load(str(data), "--index", "kp", "--path", str(path))
        assert code != 0 and "is being written by another process" in out
        assert len(out.strip().splitlines()) == 1
        with pytest.raises(BackendError, match="being written by another process"):
            EmbeddedBackend("kp", path).bulk_add([Document("x", "y", "z")])
    b = EmbeddedBackend("kp", path)  # nothing was written meanwhile; the lock is free again
    assert b.count() == len(DOCS)
    assert [[n.id for n in ns] for ns in b.neighbours(DOCS, 3, [{d.id} for d in DOCS])] == neighbours
    b.bulk_add([Document("x", "y", "z")])
    assert b.count() == len(DOCS) + 1


def test_two_concurrent_loads_never_corrupt_the_index(tmp_path: Path) -> None:
    docs = [Document(f"d{i}", f"title {i} word{i % 97}", " ".join(f"w{(i * j) % 501}" for j in range(60)))
            for i in range(6000)]
    src = _write_jsonl(tmp_path / "big.jsonl", docs)
    path = tmp_path / "kp"
    cmd = [sys.executable, "-c", "from esrank.commands import main; main()", "load", str(src), "--index", "kp", "--path", str(path),
           "--quiet", "--batch-size", "200"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = [p.returncode for p in procs]
    assert 0 in codes, outs
    for code, (_, err) in zip(codes, outs):
        if code != 0:  # the loser stops at once with the lock error, never "does not add up"
            assert "being written by another process" in err and "does not add up" not in err, err
    b = EmbeddedBackend("kp", path)
    assert b.count() == len(docs)
    assert b.ids_present([d.id for d in docs]) == {d.id for d in docs}
    assert not (path / "index.tmp").exists()


# -- crash windows: every partial state is rebuilt from the log (issue 14 item 8) ------------------

def _index_removed(path: Path) -> None:
    shutil.rmtree(path / "index")


def _only_tmp_left(path: Path) -> None:  # between rmtree(index) and os.replace(index.tmp, index)
    os.replace(path / "index", path / "index.tmp")


def _garbage_manifest(path: Path) -> None:
    (path / "manifest.json").write_text("{garbage")


def _manifest_missing(path: Path) -> None:
    (path / "manifest.json").unlink()


def _empty_npy(path: Path) -> None:
    npy = sorted((path / "index").glob("*.npy"))
    assert npy
    npy[0].write_bytes(b"")


def _torn_rows(path: Path) -> None:
    rows = (path / "index" / "rows.jsonl").read_text().splitlines(keepends=True)
    (path / "index" / "rows.jsonl").write_text("".join(rows[:5]))


CRASHES = [_index_removed, _only_tmp_left, _garbage_manifest, _manifest_missing, _empty_npy, _torn_rows]


@pytest.mark.parametrize("crash", CRASHES, ids=lambda f: f.__name__.strip("_"))
def test_rank_side_opens_rebuild_after_a_crash(crash, built: tuple[Path, list[list[str]]]) -> None:  # type: ignore[no-untyped-def]
    path, neighbours = built
    crash(path)
    b = EmbeddedBackend("kp", path)
    assert b.count() == len(DOCS)
    assert [[n.id for n in ns] for ns in b.neighbours(DOCS, 3, [{d.id} for d in DOCS])] == neighbours
    again = EmbeddedBackend("kp", path)  # the rebuilt index is whole again: opens by the fast path
    assert again.count() == len(DOCS)


@pytest.mark.parametrize("crash", CRASHES, ids=lambda f: f.__name__.strip("_"))
def test_load_resume_rebuilds_after_a_crash(crash, built: tuple[Path, list[list[str]]],  # type: ignore[no-untyped-def]
                                            tmp_path: Path) -> None:
    path, _ = built
    crash(path)
    more = [Document(f"more-{i}", f"extra title {i}", "extra text") for i in range(5)]
    src = _write_jsonl(tmp_path / "all.jsonl", DOCS + more)
    code, out = _load(str(src), "--index", "kp", "--path", str(path), "--resume")
    assert code == 0, out
    b = EmbeddedBackend("kp", path)
    assert b.count() == len(DOCS) + len(more)


def test_neighbours_command_after_a_crash(built: tuple[Path, list[list[str]]], tmp_path: Path) -> None:
    path, _ = built
    _only_tmp_left(path)
    src = _write_jsonl(tmp_path / "q.jsonl", DOCS[:3])
    out = tmp_path / "pools.jsonl"
    r = CliRunner().invoke(main, ["neighbours", str(src), "--index", "kp", "--path", str(path), "-k", "2",
                                  "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    assert len(out.read_text().splitlines()) == 3


def test_load_corpus_resume_after_a_crash(built: tuple[Path, list[list[str]]], tmp_path: Path) -> None:
    path, _ = built
    _empty_npy(path)
    b = EmbeddedBackend("kp", path)
    report = load_corpus(b, _write_jsonl(tmp_path / "d.jsonl", DOCS), resume=True)
    assert (report.already_present, report.indexed, report.count_after) == (len(DOCS), 0, len(DOCS))


# -- index names (issue 14 item 11) ----------------------------------------------------------------

@pytest.mark.parametrize("name", ["KP", "k*p", "k:p", "k p", "kp\n", "k\tp", "", "-kp", ".kp", "a/b", "k?p"])
def test_bad_embedded_index_names_are_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid index name"):
        EmbeddedBackend(name, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_bad_index_name_on_the_command_line_is_one_line(tmp_path: Path, data: Path) -> None:
    code, out = _load(str(data), "--index", "Bad:Name", "--path", str(tmp_path / "x"))
    assert code != 0 and out.strip().startswith("esrank: error:") and len(out.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
