"""Keyphrase profiles: sums of the embeddings of the documents carrying each keyphrase (real MiniLM from its
package), the cosine features computed from them, a document left out of its own profiles, the files, the mix model
that reads them, and `esrank train --profiles` → `esrank rank`."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(2)

from click.testing import CliRunner  # noqa: E402

from esrank.commands import main  # noqa: E402
from esrank.corpus import Document, read_documents, sample_corpus_path, write_documents  # noqa: E402
from esrank.errors import ConfigError  # noqa: E402
from esrank.ranking.candidates import Candidate, CandidatePool  # noqa: E402
from esrank.ranking.encoder import Encoder  # noqa: E402
from esrank.ranking.profiles import PROFILE_FILE, KeyphraseProfiles, model_profiles  # noqa: E402
from esrank.text import stemmed_key  # noqa: E402

DOCS = [
    Document("a", "Brain tumour segmentation", "Convolutional networks segment tumours in MRI.",
             ["deep learning", "medical imaging"]),
    Document("b", "Airline pricing", "Revenue management sets ticket prices.", ["revenue management", "pricing"]),
    Document("c", "Lesion detection in scans", "A neural network finds lesions in CT scans.",
             ["deep learning", "computer-aided diagnosis"]),
    Document("d", "No keyphrases", "A document without keyphrases is not in any profile.", []),
]


@pytest.fixture(scope="module")
def encoder():
    return Encoder.load(device="cpu", precision="fp32", threads=2, runtime="torch")


@pytest.fixture(scope="module")
def profiles(encoder):
    return KeyphraseProfiles.build(encoder, DOCS)


def _pool(*phrases: str) -> CandidatePool:
    return CandidatePool("q", [Candidate(p, stemmed_key(p)) for p in phrases])


def test_profiles_sum_the_embeddings_of_the_documents_carrying_each_keyphrase(encoder, profiles):
    emb = encoder.encode_documents([d.full_text for d in DOCS[:3]]).numpy()
    assert profiles.documents == 3 and len(profiles) == 5 and profiles.dim == 384
    deep = profiles.rows[stemmed_key("deep learning")]
    assert profiles.counts[deep] == 2
    np.testing.assert_allclose(profiles.sums[deep], emb[0] + emb[2], atol=1e-5)
    np.testing.assert_allclose(profiles.sums[profiles.rows[stemmed_key("pricing")]], emb[1], atol=1e-5)


def test_profile_cosine_and_mean_by_hand(encoder, profiles):
    doc = encoder.encode_documents(["Deep networks detect tumours in medical scans."]).numpy()[0]
    emb = encoder.encode_documents([d.full_text for d in DOCS[:3]]).numpy()
    pool = _pool("deep learning", "pricing", "unknown phrase")
    profiles.apply(pool, doc)
    total = emb[0] + emb[2]
    deep, pricing, unknown = pool.candidates
    assert deep.profile_cosine == pytest.approx(float(total @ doc / np.linalg.norm(total)), abs=1e-5)
    assert deep.profile_mean == pytest.approx(float((emb[0] @ doc + emb[2] @ doc) / 2), abs=1e-5)
    assert pricing.profile_cosine == pytest.approx(float(emb[1] @ doc), abs=1e-5)  # one document: its cosine
    assert (unknown.profile_cosine, unknown.profile_mean) == (0.0, 0.0) and pool.profiled
    assert deep.profile_cosine > pricing.profile_cosine  # the medical document is like the deep-learning ones


def test_an_indexed_document_is_left_out_of_its_own_profiles(encoder, profiles):
    """Left out by subtraction = profiles built without the document (what the mix model is fitted on)."""
    without_a = KeyphraseProfiles.build(encoder, DOCS[1:])
    emb_a = encoder.encode_documents([DOCS[0].full_text]).numpy()[0]
    own = frozenset(stemmed_key(k) for k in DOCS[0].keyphrases)
    got, want = _pool("deep learning", "medical imaging", "pricing"), _pool("deep learning", "medical imaging",
                                                                            "pricing")
    profiles.apply(got, emb_a, own)
    without_a.apply(want, emb_a)
    for g, w in zip(got.candidates, want.candidates):
        assert g.profile_cosine == pytest.approx(w.profile_cosine, abs=1e-5)
        assert g.profile_mean == pytest.approx(w.profile_mean, abs=1e-5)
    assert got.candidates[1].profile_cosine == 0.0  # "medical imaging": no other document carries it


def test_files_round_trip_and_refuse_what_they_cannot_trust(profiles, tmp_path, caplog):
    path = profiles.save(tmp_path / PROFILE_FILE)
    back = KeyphraseProfiles.open(path, profiles.fingerprint)
    assert back.keys == profiles.keys and isinstance(back.sums, np.memmap)
    np.testing.assert_array_equal(np.asarray(back.sums), profiles.sums)
    assert (back.counts == profiles.counts).all() and back.documents == 3
    first = json.loads(path.read_text())["matrix"]
    profiles.save(path)  # a rewrite replaces the matrix under a new name and removes the old one
    assert not (tmp_path / first).exists() and len(list(tmp_path.glob("*.npy"))) == 1
    with pytest.raises(ConfigError, match="another model"):
        KeyphraseProfiles.open(path, "0" * 24)
    assert model_profiles(tmp_path, "0" * 24) is None and "not used" in caplog.text
    matrix = tmp_path / json.loads(path.read_text())["matrix"]
    matrix.write_bytes(matrix.read_bytes()[:-8])
    with pytest.raises(ConfigError, match="truncated"):
        KeyphraseProfiles.open(path)
    with pytest.raises(ConfigError, match="encode-keyphrases"):
        KeyphraseProfiles.open(tmp_path / "missing.json")


def test_the_mix_model_reads_profile_features_only_when_every_pool_has_them(encoder, profiles):
    from esrank.ranking.features import PROFILE_FEATURES
    from esrank.ranking.mix import fit_model

    docs = [Document(f"v{i}", "Deep learning for tumours", "Networks segment tumours in MRI scans.",
                     ["deep learning"] if i % 2 else ["pricing"]) for i in range(6)]
    emb = encoder.encode_documents([docs[0].full_text]).numpy()[0]

    def pools(profiled: bool) -> list[CandidatePool]:
        out = []
        for _ in docs:
            pool = _pool("deep learning", "pricing", "medical imaging")
            for rank, c in enumerate(pool.candidates, 1):
                c.neighbour_ranks, c.bm25_scores = [rank], [1.0 / rank]
            if profiled:
                profiles.apply(pool, emb)
            out.append(pool)
        return out

    cos = [[0.5, 0.4, 0.3]] * len(docs)
    with_profiles = fit_model(docs, pools(True), cos)
    without = fit_model(docs, pools(False), cos)
    assert set(PROFILE_FEATURES) <= set(with_profiles.features) and with_profiles.needs_profiles
    assert not set(PROFILE_FEATURES) & set(without.features) and not without.needs_profiles
    assert with_profiles.usable(pools(True)[0]) and not with_profiles.usable(pools(False)[0])
    assert without.usable(pools(False)[0])


def test_train_with_profiles_then_rank_reads_them_from_the_model(tmp_path):
    docs = list(read_documents(sample_corpus_path()))
    write_documents(docs[:30], tmp_path / "train.jsonl")
    write_documents(docs[80:84], tmp_path / "test.jsonl")
    where = ["--index", "kp", "--path", str(tmp_path / "idx")]
    r = CliRunner().invoke(main, ["load", str(tmp_path / "train.jsonl"), *where])
    assert r.exit_code == 0, r.output
    model = tmp_path / "model"
    r = CliRunner().invoke(main, ["train", *where, "--data", str(tmp_path / "train.jsonl"), "--out", str(model),
                                  "--batch-size", "8", "--mini-batch-size", "8", "--max-seq-length", "32",
                                  "--threads", "1", "--no-carbon", "--profiles", "-k", "10"])
    assert r.exit_code == 0, r.output
    assert "keyphrase profiles:" in r.stderr and (model / PROFILE_FILE).is_file()
    card = json.loads((model / "esrank_card.json").read_text())
    assert "profile_cosine" in card["mix"]["model"]["features"]

    def rank(out: str) -> tuple[list[dict], str]:
        res = CliRunner().invoke(main, ["rank", str(tmp_path / "test.jsonl"), *where, "--model", str(model),
                                        "-k", "10", "--out", str(tmp_path / out), "--threads", "1"])
        assert res.exit_code == 0, res.output
        return [json.loads(x) for x in (tmp_path / out).read_text().splitlines()], res.stderr

    with_profiles, err = rank("a.jsonl")
    assert "keyphrase profiles" not in err
    stored = tmp_path / "stored"
    stored.mkdir()
    for f in model.glob(f"{PROFILE_FILE}*"):
        shutil.move(str(f), stored / f.name)
    without, err = rank("b.jsonl")
    assert "keyphrase profiles" in err and "linear mix" in err  # said, not silently weaker
    assert [p["keyphrases"] for p in with_profiles] != [p["keyphrases"] for p in without]
    for f in stored.iterdir():
        shutil.move(str(f), model / f.name)
    r = CliRunner().invoke(main, ["encode-keyphrases", *where, "--model", str(model), "--profiles",
                                  "--cache-dir", str(tmp_path / "cache")])
    assert r.exit_code == 0, r.output
    assert "keyphrase profiles: " in r.stderr
    r = CliRunner().invoke(main, ["encode-keyphrases", *where, "--profiles", "--cache-dir", str(tmp_path / "c2")])
    assert r.exit_code != 0 and "--model DIR" in r.output
    r = CliRunner().invoke(main, ["train", *where, "--data", str(tmp_path / "train.jsonl"), "--out",
                                  str(tmp_path / "m2"), "--validation-share", "0", "--profiles", "--no-carbon"])
    assert r.exit_code != 0 and "--validation-share" in r.output and not (tmp_path / "m2").exists()
