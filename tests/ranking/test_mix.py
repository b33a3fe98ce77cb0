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
    VALIDATION_MAX,
    VALIDATION_SHARE,
    MixFit,
    fit_weight,
    mix_scores,
    read_fit,
    validation_split,
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
    (tmp_path / "esrank_card.json").write_text(json.dumps({"esrank_card": 1, "loss": {"name": "masked-mnr"}}))
    fit = MixFit(weight=0.35, k=10, validation_documents=120, objective_value=0.27,
                 grid=[{"weight": 0.35, "objective": 0.27, "P_F1@Q": 0.4, "Abs_R@Q": 0.14}],
                 validation_fingerprint="abc")
    write_fit(tmp_path, fit)
    card = json.loads((tmp_path / "esrank_card.json").read_text())
    assert card["loss"] == {"name": "masked-mnr"}  # the rest of the card is kept
    assert set(card["mix"]) >= {"weight", "k", "validation_documents", "objective", "grid"}
    assert read_fit(tmp_path) == fit
    (tmp_path / "esrank_card.json").write_text(json.dumps({"mix": {"weight": "x"}}))
    with pytest.raises(ConfigError, match="mix"):
        read_fit(tmp_path)


def test_validation_split_is_deterministic_and_disjoint():
    docs = [Document(f"d{i}", "t", "x", ["k"] if i % 10 else []) for i in range(1000)]
    rest, val = validation_split(docs)
    rest2, val2 = validation_split(list(reversed(docs)))
    assert {d.id for d in val} == {d.id for d in val2}
    assert len(val) == math.ceil(VALIDATION_SHARE * 900) and all(d.keyphrases for d in val)
    assert {d.id for d in rest}.isdisjoint(d.id for d in val) and len(rest) + len(val) == 1000
    many = [Document(f"m{i}", "t", "x", ["k"]) for i in range(3 * VALIDATION_MAX)]
    assert len(validation_split(many, 0.5)[1]) == VALIDATION_MAX
    assert validation_split(docs, 0.0) == (docs, [])
    small = [Document(f"s{i}", "t", "x", ["k"]) for i in range(12)]
    assert len(validation_split(small)[1]) == 2  # at least 20, but never more than a fifth
    with pytest.raises(ConfigError):
        validation_split(docs, 1.0)


def test_the_weight_to_rank_with_comes_from_the_card_unless_given(tmp_path):
    from esrank.ranking.mix import DEFAULT_WEIGHT, MixFit, resolve_mix, write_fit

    model = tmp_path / "model"
    model.mkdir()
    assert resolve_mix("model", None, 20, model) == (None, None, None)  # not a mix: no weight, no model
    weight, mix_model, note = resolve_mix("mix", None, 20, model)  # no card yet
    assert weight == DEFAULT_WEIGHT and mix_model is None and note and "no fitted mix" in note
    write_fit(model, MixFit(weight=0.3, k=20, validation_documents=7))
    assert resolve_mix("mix", None, 20, model) == (0.3, None, None)
    weight, _, note = resolve_mix("mix", None, 10, model)
    assert weight == 0.3 and note and "k=20" in note
    assert resolve_mix("mix", 0.9, 20, model) == (0.9, None, None)  # an explicit weight wins
    fitted = _fitted_model()
    write_fit(model, MixFit(weight=0.3, k=20, validation_documents=7, model=fitted))
    assert resolve_mix("mix", None, 20, model) == (0.3, fitted, None)  # the model, its weight as the fallback
    assert resolve_mix("mix", 0.9, 20, model) == (0.9, None, None)  # an explicit weight still wins


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


def _validation_case() -> tuple[list[Document], list[CandidatePool], list[list[float]]]:
    """Forty documents where gold absent candidates are carried by more neighbours (a lower summed vote, though)
    and are rarer in the index,
    and gold present candidates occur in the title; their cosines carry no signal, and ties (pool order) put the
    wrong candidates first."""
    docs, pools, cosines = [], [], []
    for i in range(40):
        doc = Document(f"v{i}", f"graph{i} mining", f"we study graph{i} mining and data{i} cleaning here",
                       [f"graph{i} mining", f"gold{i} topic"])
        cands = [_cand(f"data{i} cleaning", 3.0), _cand(f"graph{i} mining", 3.0),
                 _cand(f"wrong{i} topic", 7.0), _cand(f"gold{i} topic", 2.0, 2.0, 2.0)]
        pool = CandidatePool(doc.id, cands, index_documents=1000)
        cands[2].index_df, cands[3].index_df = 300, 3
        docs.append(doc)
        pools.append(pool)
        cosines.append([0.5, 0.5, 0.5, 0.5])
    return docs, pools, cosines


def _fitted_model():
    from esrank.ranking.mix import fit_model

    return fit_model(*_validation_case())


def test_mix_model_learns_the_evidence_that_separates_gold_from_the_rest():
    from esrank.ranking.features import FEATURES, FREQUENCY_FEATURES, PROFILE_FEATURES

    docs, pools, cosines = _validation_case()
    model = _fitted_model()
    # pools without keyphrase profiles: every feature but the profile ones
    assert model.features == [f for f in FEATURES if f not in PROFILE_FEATURES] and model.needs_frequencies
    assert not model.needs_profiles
    for doc, pool, cos in zip(docs[:5], pools[:5], cosines[:5]):
        scores = dict(zip(pool.phrases, model.scores(doc, pool, cos)))
        i = doc.id[1:]
        assert scores[f"graph{i} mining"] > scores[f"data{i} cleaning"]  # present: in the title
        assert scores[f"gold{i} topic"] > scores[f"wrong{i} topic"]  # absent: more neighbours, rarer in the index
        assert all(0 < v < 1 for v in scores.values())
    # the same case through fit_weight: the model's objective is perfect where the linear mix is not
    fit = fit_weight(docs, pools, cosines, score_document, k=5, model=True)
    assert fit.model is not None and fit.model_objective == pytest.approx(1.0)
    assert fit.objective_value < 1.0
    # without frequencies in the pools, the model leaves the frequency features out
    for p in pools:
        p.index_documents = 0
    from esrank.ranking.mix import fit_model

    assert not set(fit_model(docs, pools, cosines).features) & set(FREQUENCY_FEATURES)


def test_mix_model_card_round_trip_and_ranking_fallback(tmp_path):
    from esrank.ranking.mix import MixModel

    model = _fitted_model()
    fit = MixFit(weight=0.4, k=5, validation_documents=40, objective_value=0.8, model=model, model_objective=0.9)
    write_fit(tmp_path, fit)
    again = read_fit(tmp_path)
    assert again == fit and isinstance(again.model, MixModel)
    card = json.loads((tmp_path / "esrank_card.json").read_text())
    card["mix"]["model"]["features"] = ["cosine", "no such feature"]
    (tmp_path / "esrank_card.json").write_text(json.dumps(card))
    with pytest.raises(ConfigError, match="unknown features"):
        read_fit(tmp_path)
    # ranking: with frequencies the model decides; without them, the linear mix with the fitted weight
    ranker = Ranker.load(None, device="cpu", precision="fp32", threads=2)
    docs, pools, _ = _validation_case()
    (by_model,) = ranker.rank_pools(docs[:1], pools[:1], mix_weight=0.4, mix_model=model)
    cos = ranker.cosine_scores(docs[:1], pools[:1])[0]
    assert [k.score for k in by_model.keyphrases] == pytest.approx(
        sorted(model.scores(docs[0], pools[0], cos), reverse=True))
    pools[0].index_documents = 0
    (fallback,) = ranker.rank_pools(docs[:1], pools[:1], mix_weight=0.4, mix_model=model)
    assert {k.phrase: k.score for k in fallback.keyphrases} == pytest.approx(
        dict(zip(pools[0].phrases, mix_scores(cos, [c.vote for c in pools[0].candidates], 0.4))))


def test_pools_carry_index_frequencies_without_the_query_documents_own_keyphrases(tmp_path):
    from esrank.ranking.pipeline import RankSettings, candidate_pools
    from esrank.retrieval.embedded import EmbeddedBackend

    docs = [Document("a", "graph mining", "graph mining of large graphs", ["graph mining", "data mining"]),
            Document("b", "graph mining", "mining graphs at scale", ["graph mining"]),
            Document("c", "graph mining tools", "graph mining", ["graph mining", "tools"])]
    backend = EmbeddedBackend("freq", tmp_path / "ix")
    backend.create(overwrite=True)
    backend.bulk_add(docs)
    settings = RankSettings(k=5, frequencies=True)
    (pool,) = candidate_pools(backend, docs[:1], settings)  # "a" is indexed: its own keyphrases are not counted
    df = {c.phrase: c.index_df for c in pool.candidates}
    assert pool.index_documents == 3 and df == {"graph mining": 2, "tools": 1}
    outsider = Document("z", "graph mining", "graph mining", ["graph mining", "tools"])  # not indexed
    (pool,) = candidate_pools(backend, [outsider], settings)
    assert {c.phrase: c.index_df for c in pool.candidates}["graph mining"] == 3
    (pool,) = candidate_pools(backend, docs[:1], RankSettings(k=5))  # not asked for: unknown
    assert pool.index_documents == 0 and all(c.index_df == 0 for c in pool.candidates)
    backend.close()


def test_candidate_features_by_hand():
    from esrank.ranking.features import FEATURES, candidate_features

    doc = Document("d", "Graph mining", "We mine large graphs. Graph mining scales.")
    # neighbours 1 and 2 carry "graph mining" (present); neighbour 1 also carries "data mining" (absent),
    # neighbour 3 carries "data mining" and "social network" (absent)
    pool = CandidatePool("d", [Candidate("graph mining", stemmed_key("graph mining"), [1, 2], [4.0, 2.0]),
                               Candidate("data mining", stemmed_key("data mining"), [1, 3], [4.0, 1.0]),
                               Candidate("social network", stemmed_key("social network"), [3], [1.0])],
                         index_documents=100)
    pool.candidates[0].index_df, pool.candidates[1].index_df = 9, 29
    x, present = candidate_features(doc, pool, [0.7, 0.2, 0.1])
    f = {name: x[:, i].tolist() for i, name in enumerate(FEATURES)}
    assert present.tolist() == [True, False, False]
    assert f["cosine"] == pytest.approx([0.7, 0.2, 0.1])
    assert f["vote_share"] == pytest.approx([1.0, 5 / 6, 1 / 6])
    assert f["log_neighbours"] == pytest.approx([math.log(3), math.log(3), math.log(2)])
    assert f["best_rank_inverse"] == pytest.approx([1.0, 1.0, 1 / 3])
    assert f["best_score_share"] == pytest.approx([1.0, 1.0, 0.25])
    assert f["log_index_df"] == pytest.approx([math.log(10), math.log(30), 0.0])
    assert f["concentration"] == pytest.approx([math.log(2.1 / 10), math.log(2.1 / 30), math.log(1.1)])
    assert f["word_overlap"] == pytest.approx([1.0, 0.5, 0.0])  # "mine" and "mining" share the stem
    assert f["in_title"] == [1.0, 0.0, 0.0]
    assert f["first_position"] == pytest.approx([0.0, 1.0, 1.0])
    assert f["log_occurrences"] == pytest.approx([math.log(3), 0.0, 0.0])
    assert f["words"] == [2.0, 2.0, 2.0]
    # agreement: neighbour 1 carries the present "graph mining", so it agrees with "data mining"; neighbour 3 does
    # not; "graph mining" itself gets no agreement from its own presence
    assert f["agreeing_neighbours"] == [0.0, 1.0, 0.0]
    assert f["log_agreement"] == pytest.approx([0.0, math.log(2), 0.0])
    # neighbour relevance (mean cosine of its *other* candidates) and fit (share of them present in the document):
    # neighbour 1 holds graph mining (0.7, present) + data mining (0.2), 2 only graph mining, 3 data mining +
    # social network (0.1). graph mining: n1 → 0.2 / fit 0 (itself left out), n2 has no other → 0;
    # data mining: n1 → 0.7 / fit 1, n3 → 0.1 / fit 0; social network: n3 → 0.2 / fit 0
    assert f["neighbour_relevance_best"] == pytest.approx([0.2, 0.7, 0.2])
    assert f["neighbour_relevance_sum"] == pytest.approx([0.2 / 0.8, 1.0, 0.2 / 0.8])  # relative to the largest
    assert f["neighbour_relevance_mean"] == pytest.approx([0.1, 0.4, 0.2])
    assert f["neighbour_fit_best"] == pytest.approx([0.0, 1.0, 0.0])
    assert f["neighbour_fit_sum"] == pytest.approx([0.0, 1.0, 0.0])
    assert f["neighbour_fit_mean"] == pytest.approx([0.0, 0.5, 0.0])


def test_listwise_fit_ranks_within_documents_and_is_calibrated():
    """A feature that only separates gold within each document (its level shifts from document to document) is what
    the listwise loss learns; the Platt step makes the mean probability the share of gold candidates."""
    import numpy as np

    from esrank.ranking.mix import fit_listwise

    rng = np.random.default_rng(0)
    groups = []
    for _ in range(60):
        n = 12
        shift = rng.normal(0, 5)  # document-level offset: useless across documents, decisive within one
        y = np.zeros(n)
        y[rng.choice(n, 2, replace=False)] = 1
        within = shift + y * 1.0 + rng.normal(0, 0.2, n)
        noise = rng.normal(0, 1, n)
        groups.append((np.column_stack([within, noise]), y))
    model = fit_listwise(groups)
    hits = 0
    for x, y in groups:
        top2 = np.argsort(-model.logits(x))[:2]
        hits += int(y[top2].sum())
    assert hits / 120 > 0.9  # gold ranked first within its document
    assert model.coef[0] > 0 and abs(model.coef[1]) < 0.5 * model.coef[0]
    x_all = np.vstack([x for x, _ in groups])
    p = 1 / (1 + np.exp(-model.logits(x_all)))
    assert p.mean() == pytest.approx(np.concatenate([y for _, y in groups]).mean(), abs=0.01)
    # no document with both gold and other candidates: the pointwise logistic regression
    flat = fit_listwise([(np.ones((3, 2)), np.zeros(3))])
    assert flat.coef == [0.0, 0.0]
