"""The mix score (cosine and normalised neighbour vote): by hand, through the real ranker, the weight fit on a
hand-made validation case, the model-card round trip and the validation split."""
from __future__ import annotations

import json
import math
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(2)

from esrank.corpus import Document  # noqa: E402
from esrank.errors import ConfigError  # noqa: E402
from esrank.evaluation.prmu import score_document  # noqa: E402
from esrank.ranking.candidates import Candidate, CandidatePool  # noqa: E402
from esrank.ranking.mix import (  # noqa: E402
    DEFAULT_WEIGHT,
    GRID,
    MixFit,
    fit_weight,
    mix_scores,
    read_fit,
    validation_split,
    weight_for,
    write_fit,
)
from esrank.ranking.ranker import Ranker  # noqa: E402
from esrank.text import stemmed_key  # noqa: E402


def _cand(phrase: str, *scores: float) -> Candidate:
    return Candidate(phrase, stemmed_key(phrase), list(range(1, len(scores) + 1)), list(scores))


def test_mix_score_by_hand():
    # votes 1, 4, 2 → normalised 0.25, 1, 0.5
    assert mix_scores([0.9, 0.2, 0.5], [1.0, 4.0, 2.0], 0.5) == pytest.approx([0.575, 0.6, 0.5])
    assert mix_scores([0.9, 0.2, 0.5], [1.0, 4.0, 2.0], 1.0) == pytest.approx([0.9, 0.2, 0.5])
    assert mix_scores([0.9, 0.2, 0.5], [1.0, 4.0, 2.0], 0.0) == pytest.approx([0.25, 1.0, 0.5])
    assert mix_scores([0.4, 0.2], [0.0, 0.0], 0.25) == pytest.approx([0.1, 0.05])  # no vote: the cosine part only
    with pytest.raises(ValueError):
        mix_scores([0.1], [1.0, 2.0], 0.5)


def test_ranker_mixes_its_cosines_with_the_pool_votes():
    ranker = Ranker.load(None, device="cpu", precision="fp32", threads=2)
    doc = Document("d", "Brain tumour segmentation", "A convolutional network segments tumours in MRI scans.")
    pool = CandidatePool("d", [_cand("airline pricing", 9.0, 3.0), _cand("tumour segmentation", 2.0),
                               _cand("convolutional neural network", 4.0, 1.0)])
    (cos,) = ranker.cosine_scores([doc], [pool])
    (by_cosine,) = ranker.rank_pools([doc], [pool])
    assert by_cosine.phrases[0] == "tumour segmentation" and by_cosine.phrases[-1] == "airline pricing"
    w = 0.3
    (mixed,) = ranker.rank_pools([doc], [pool], mix_weight=w)
    expected = {c.phrase: w * x + (1 - w) * c.vote / 12.0 for c, x in zip(pool.candidates, cos)}
    assert {k.phrase: k.score for k in mixed.keyphrases} == pytest.approx(expected)
    assert mixed.phrases == sorted(expected, key=lambda p: -expected[p])
    assert mixed.phrases[0] == "airline pricing"  # at w=0.3 the vote of 12 outweighs the cosine
    assert len(mixed.keyphrases) == 3  # no cut: every candidate


def test_fit_picks_the_weight_the_validation_case_requires():
    # Document a needs w < 0.222 (its gold has the top vote but a low cosine), document b needs w > 0.118 (its gold
    # has a high cosine and nearly the top vote): only w = 0.15 and 0.2 rank both golds first; the tie goes to 0.2
    # (nearer the default 0.5).
    docs = [Document("a", "one", "nothing here", ["gold alpha"]), Document("b", "two", "nothing here", ["gold beta"])]
    pools = [CandidatePool("a", [_cand("wrong alpha", 0.8), _cand("gold alpha", 1.0)]),
             CandidatePool("b", [_cand("wrong beta", 1.0), _cand("gold beta", 0.9)])]
    cosines = [[0.6, 0.0], [0.0, 0.9]]
    fit = fit_weight(docs, pools, cosines, score_document, k=7)
    assert fit.weight == 0.2 and fit.k == 7 and fit.validation_documents == 2
    assert fit.objective_value == pytest.approx(0.5)  # Abs R@Q 1.0, no present gold (0)
    good = [p["weight"] for p in fit.grid if p["Abs_R@Q"] == 1.0]
    assert good == [0.15, 0.2]
    assert [p["weight"] for p in fit.grid] == list(GRID)
    # cosine alone (the pure ranker) gets document a wrong, vote alone gets b wrong
    assert fit.grid[-1]["Abs_R@Q"] == 0.5 and fit.grid[0]["Abs_R@Q"] == 0.5


def test_card_round_trip(tmp_path):
    assert read_fit(tmp_path) is None and read_fit(None) is None
    assert weight_for(tmp_path) == (DEFAULT_WEIGHT, None)
    (tmp_path / "esrank_card.json").write_text(json.dumps({"esrank_card": 1, "loss": {"name": "masked-mnr"}}))
    fit = MixFit(weight=0.35, k=10, validation_documents=120, objective_value=0.27,
                 grid=[{"weight": 0.35, "objective": 0.27, "P_F1@Q": 0.4, "Abs_R@Q": 0.14}],
                 validation_fingerprint="abc")
    write_fit(tmp_path, fit)
    card = json.loads((tmp_path / "esrank_card.json").read_text())
    assert card["loss"] == {"name": "masked-mnr"}  # the rest of the card is kept
    assert set(card["mix"]) >= {"weight", "k", "validation_documents", "objective", "grid"}
    assert read_fit(tmp_path) == fit
    assert weight_for(tmp_path) == (0.35, fit)
    (tmp_path / "esrank_card.json").write_text(json.dumps({"mix": {"weight": "x"}}))
    with pytest.raises(ConfigError, match="mix"):
        read_fit(tmp_path)


def test_validation_split_is_deterministic_and_disjoint():
    docs = [Document(f"d{i}", "t", "x", ["k"] if i % 10 else []) for i in range(1000)]
    rest, val = validation_split(docs)
    rest2, val2 = validation_split(list(reversed(docs)))
    assert {d.id for d in val} == {d.id for d in val2}
    assert len(val) == math.ceil(0.05 * 900) and all(d.keyphrases for d in val)
    assert {d.id for d in rest}.isdisjoint(d.id for d in val) and len(rest) + len(val) == 1000
    assert len(validation_split(docs * 20, 0.05)[1]) <= 500
    assert validation_split(docs, 0.0) == (docs, [])
    small = [Document(f"s{i}", "t", "x", ["k"]) for i in range(12)]
    assert len(validation_split(small)[1]) == 2  # at least 20, but never more than a fifth
    with pytest.raises(ConfigError):
        validation_split(docs, 1.0)


def test_the_weight_to_rank_with_comes_from_the_card_unless_given(tmp_path):
    from esrank.ranking.mix import DEFAULT_WEIGHT, MixFit, resolve_weight, write_fit

    model = tmp_path / "model"
    model.mkdir()
    assert resolve_weight("model", None, 20, model) == (None, None)  # not a mix: no weight
    weight, note = resolve_weight("mix", None, 20, model)  # no card yet
    assert weight == DEFAULT_WEIGHT and note and "no fitted mix weight" in note
    write_fit(model, MixFit(weight=0.3, k=20, validation_documents=7))
    assert resolve_weight("mix", None, 20, model) == (0.3, None)
    weight, note = resolve_weight("mix", None, 10, model)
    assert weight == 0.3 and note and "k=20" in note
    assert resolve_weight("mix", 0.9, 20, model) == (0.9, None)  # an explicit weight wins


def test_keyphrase_ranker_ranks_with_the_cards_weight(tmp_path):
    from esrank.ranking.mix import MixFit, write_fit
    from esrank.retrieval.embedded import EmbeddedBackend
    from esrank.corpus import read_documents, sample_corpus_path
    import esrank

    docs = list(read_documents(sample_corpus_path()))[:30]
    backend = EmbeddedBackend("kp", tmp_path / "index")
    backend.create(overwrite=True)
    backend.bulk_add(docs)
    backend.close()
    from esrank.ranking.encoder import default_model_path
    import shutil

    model = tmp_path / "model"
    shutil.copytree(default_model_path(), model)
    write_fit(model, MixFit(weight=0.25, k=5, validation_documents=3))
    with esrank.KeyphraseRanker.open(index="kp", path=tmp_path / "index", model=model, k=5, threads=1) as r:
        assert r.settings.method == "mix" and r.settings.mix_weight == 0.25
