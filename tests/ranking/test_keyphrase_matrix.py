"""The memory-mapped keyphrase matrix `esrank encode-keyphrases` writes: the same embeddings as encoding, read with
no encoding and no SQLite lookup; stale, foreign and truncated files ignored with a warning; atomic writes."""
from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest
import torch
from click.testing import CliRunner

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(2)

from esrank.commands import main  # noqa: E402
from esrank.corpus import read_documents, sample_corpus_path, write_documents  # noqa: E402
from esrank.ranking.encoder import EmbeddingCache, Encoder  # noqa: E402
from esrank.ranking.keyphrase_matrix import KeyphraseMatrix, table_path, write_matrix  # noqa: E402
from esrank.ranking.pipeline import RankSettings, rank_documents  # noqa: E402
from esrank.ranking.ranker import Ranker  # noqa: E402
from esrank.retrieval.embedded import EmbeddedBackend  # noqa: E402

PHRASES = ["keyphrase extraction", "MRI", "brain tumour", "revenue management", "deep learning"]


@pytest.fixture(scope="module")
def encoder():
    return Encoder.load(device="cpu", precision="fp32", threads=2)


class NoEncoding(Encoder):
    """An encoder that fails when asked to encode: proves the matrix served every phrase."""

    def encode(self, texts, batch_size=None):
        raise AssertionError(f"encoded {list(texts)[:3]}")


def _filled(encoder, root, phrases=PHRASES):
    cache = EmbeddingCache(encoder, disk=root)
    cache.encode(phrases)
    cache.write_matrix()
    cache.close()
    return cache


def test_matrix_gives_the_encoded_embeddings_without_encoding_or_sqlite(encoder, tmp_path):
    _filled(encoder, tmp_path)
    table = json.loads(table_path(tmp_path, encoder.fingerprint).read_text())
    assert table["rows"] == len(PHRASES) and table["dtype"] == "float32" and table["fingerprint"] == encoder.fingerprint
    assert (tmp_path / table["matrix"]).is_file()
    fresh = EmbeddingCache(NoEncoding(encoder.model, "cpu", "fp32"), disk=tmp_path)
    assert fresh.matrix is not None and len(fresh.matrix) == len(PHRASES)
    assert isinstance(fresh.matrix.matrix, np.memmap)  # mapped, not read into memory

    def no_sqlite(_):
        raise AssertionError("SQLite was asked")
    fresh.store.get_many = no_sqlite  # type: ignore[union-attr, assignment]
    query = ["MRI", "deep learning", "MRI", "keyphrase extraction"]
    got = fresh.encode(query)
    want = encoder.encode(query, batch_size=512)  # encoded again, in another batch
    assert got.shape == want.shape and got.dtype == torch.float32
    assert torch.allclose(got, want, atol=1e-5)
    assert (fresh.stats.matrix_hits, fresh.stats.disk_hits, fresh.stats.memory_hits, fresh.stats.encoded) == (3, 0, 0, 0)
    fresh.close()


def test_mixed_lookup_keeps_order_and_encodes_only_the_new(encoder, tmp_path):
    _filled(encoder, tmp_path, PHRASES[:3])
    cache = EmbeddingCache(encoder, disk=tmp_path)
    query = ["new phrase one", "MRI", "brain tumour", "new phrase one", "another new"]
    got = cache.encode(query)
    assert torch.allclose(got, encoder.encode(query), atol=1e-5)
    assert (cache.stats.matrix_hits, cache.stats.encoded) == (2, 2)
    again = cache.encode(["another new", "MRI"])  # the new ones now from memory
    assert torch.equal(again[0], got[4]) and torch.equal(again[1], got[1])
    assert (cache.stats.matrix_hits, cache.stats.memory_hits, cache.stats.encoded) == (3, 1, 2)
    cache.close()


def test_encode_keyphrases_writes_the_matrix_and_ranking_is_unchanged(encoder, tmp_path):
    docs = list(read_documents(sample_corpus_path()))
    train, test = docs[:60], docs[60:72]
    write_documents(train, tmp_path / "train.jsonl")
    where = ["--index", "mm", "--path", str(tmp_path / "idx")]
    runner = CliRunner()
    assert runner.invoke(main, ["load", str(tmp_path / "train.jsonl"), *where]).exit_code == 0
    cache = tmp_path / "cache"
    r = runner.invoke(main, ["encode-keyphrases", *where, "--cache-dir", str(cache), "--threads", "2",
                             "--runtime", "torch", "--precision", "fp32"])
    assert r.exit_code == 0, r.output
    n = len({p for d in train for p in d.keyphrases})
    assert f"{n} encoded" in r.stderr and "memory-mapped as" in r.stderr
    matrix = KeyphraseMatrix.open(cache, encoder.fingerprint, encoder.dim)
    assert matrix is not None and len(matrix) == n
    r = runner.invoke(main, ["encode-keyphrases", *where, "--cache-dir", str(cache), "--threads", "2",
                             "--runtime", "torch", "--precision", "fp32"])
    assert r.exit_code == 0 and f"0 encoded, {n} already cached" in r.stderr
    assert len(list(cache.glob("*.npy"))) == 1  # the superseded matrix is gone

    backend = EmbeddedBackend("mm", tmp_path / "idx")
    settings = RankSettings(k=5, method="model")
    plain = list(rank_documents(test, backend, Ranker(encoder), settings))
    # documents are encoded; keyphrases must come from the matrix
    mapped_ranker = Ranker(encoder, EmbeddingCache(NoEncoding(encoder.model, "cpu", "fp32"), disk=cache))
    mapped = list(rank_documents(test, backend, mapped_ranker, settings))
    assert mapped_ranker.cache.stats.encoded == 0 and mapped_ranker.cache.stats.matrix_hits > 0
    assert [p.id for p in mapped] == [p.id for p in plain]
    for a, b in zip(plain, mapped):
        assert a.phrases == b.phrases
        assert np.allclose([k.score for k in a.keyphrases], [k.score for k in b.keyphrases], atol=1e-5)
    backend.close()


@pytest.mark.parametrize("damage", ["foreign", "truncated", "missing", "garbled", "dimension"])
def test_a_stale_or_damaged_matrix_is_ignored_with_a_warning(encoder, tmp_path, caplog, damage):
    _filled(encoder, tmp_path)
    tpath = table_path(tmp_path, encoder.fingerprint)
    table = json.loads(tpath.read_text())
    npy = tmp_path / table["matrix"]
    if damage == "foreign":  # another model's table copied under this model's name
        table["fingerprint"] = "0" * 24 + "-fp32"
        tpath.write_text(json.dumps(table))
    elif damage == "truncated":
        with open(npy, "r+b") as fh:
            fh.truncate(npy.stat().st_size - 100)
    elif damage == "missing":
        npy.unlink()
    elif damage == "garbled":
        tpath.write_text(tpath.read_text()[:50])
    else:
        table["dim"] = 7
        tpath.write_text(json.dumps(table))
    with caplog.at_level(logging.WARNING, logger="esrank.ranking.keyphrase_matrix"):
        cache = EmbeddingCache(encoder, disk=tmp_path)
    assert cache.matrix is None
    assert len(caplog.records) == 1 and "ignored" in caplog.records[0].getMessage()
    got = cache.encode(PHRASES)  # served by the SQLite cache instead, the same vectors
    assert cache.stats.disk_hits == len(PHRASES) and cache.stats.encoded == 0
    assert torch.allclose(got, encoder.encode(PHRASES), atol=1e-5)
    cache.close()


def test_write_is_atomic(encoder, tmp_path):
    _filled(encoder, tmp_path, PHRASES[:2])
    tpath = table_path(tmp_path, encoder.fingerprint)
    before = tpath.read_text()
    before_files = sorted(p.name for p in tmp_path.iterdir())

    def failing():
        yield ["a"], np.ones((1, encoder.dim), np.float32)
        raise KeyboardInterrupt  # interrupted half-way

    with pytest.raises(KeyboardInterrupt):
        write_matrix(tmp_path, encoder.fingerprint, encoder.dim, 3, failing())
    assert tpath.read_text() == before and sorted(p.name for p in tmp_path.iterdir()) == before_files
    with pytest.raises(ValueError, match="announced"):  # fewer rows than announced: nothing replaced either
        write_matrix(tmp_path, encoder.fingerprint, encoder.dim, 3, iter([(["a"], np.ones((1, encoder.dim)))]))
    assert tpath.read_text() == before and sorted(p.name for p in tmp_path.iterdir()) == before_files
    m = KeyphraseMatrix.open(tmp_path, encoder.fingerprint, encoder.dim)
    assert m is not None and sorted(m.rows) == sorted(PHRASES[:2])


def test_empty_document_phrases_and_an_empty_matrix(encoder, tmp_path):
    cache = EmbeddingCache(encoder, disk=tmp_path)
    cache.write_matrix()  # an index without keyphrases: an empty matrix, still valid
    assert cache.matrix is not None and len(cache.matrix) == 0
    assert cache.encode([]).shape == (0, encoder.dim)
    assert cache.encode(["MRI"]).shape == (1, encoder.dim) and cache.stats.encoded == 1
    cache.close()
