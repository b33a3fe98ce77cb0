"""The pipeline overlaps retrieval of the next batch with ranking of this one: the same predictions in the same
order as one at a time, errors of a later batch raised at that batch, at most one batch ahead, no thread left
behind, and sequential stages when the tracker meters energy."""
from __future__ import annotations

import os
import threading
import time

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(2)

from esrank.corpus import Document, read_documents, sample_corpus_path  # noqa: E402
from esrank.cost.tracker import CostTracker  # noqa: E402
from esrank.errors import BackendError, InputError  # noqa: E402
from esrank.ranking.encoder import Encoder  # noqa: E402
from esrank.ranking.pipeline import RankSettings, rank_documents  # noqa: E402
from esrank.ranking.ranker import Ranker, RankStats  # noqa: E402
from esrank.retrieval.embedded import EmbeddedBackend  # noqa: E402

BATCH = 4


@pytest.fixture(scope="module")
def corpus():
    docs = list(read_documents(sample_corpus_path()))
    return docs[:60], docs[60:78]  # 18 queries: 4 full batches and one of 2


@pytest.fixture(scope="module")
def index(corpus, tmp_path_factory):
    backend = EmbeddedBackend("overlap", tmp_path_factory.mktemp("idx") / "idx")
    backend.create(overwrite=True)
    backend.bulk_add(corpus[0])
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def encoder():
    return Encoder.load(device="cpu", precision="fp32", threads=2)


class Watched:
    """A backend that records which thread retrieves which batch, and can fail or signal on a batch."""

    def __init__(self, backend, fail_on: int | None = None) -> None:
        self.backend = backend
        self.calls: list[tuple[str, str]] = []  # (thread name, first id of the batch)
        self.fail_on = fail_on
        self.started: dict[int, threading.Event] = {}

    def neighbours(self, documents, k=5, exclude_ids=None):
        n = len(self.calls)
        self.calls.append((threading.current_thread().name, documents[0].id))
        self.started.setdefault(n, threading.Event()).set()
        if self.fail_on == n:
            raise BackendError("search failed on purpose")
        return self.backend.neighbours(documents, k, exclude_ids)

    def event(self, n: int) -> threading.Event:
        return self.started.setdefault(n, threading.Event())

    def __getattr__(self, name):
        return getattr(self.backend, name)


def _settings(**kw) -> RankSettings:
    return RankSettings(k=5, batch_size=BATCH, method="mix", mix_weight=0.5, frequencies=True, **kw)


def _alive() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "esrank-retrieval"]


def test_overlapped_predictions_equal_sequential_ones(corpus, index, encoder):
    test = corpus[1]
    seq_stats, ovl_stats = RankStats(), RankStats()
    sequential = list(rank_documents(test, index, Ranker(encoder), _settings(overlap=False)))
    watched = Watched(index)
    ranker = Ranker(encoder)
    overlapped = list(rank_documents(iter(test), watched, ranker, _settings()))
    assert [p.id for p in overlapped] == [d.id for d in test]
    assert [(p.id, [(k.phrase, k.score, k.category) for k in p.keyphrases]) for p in overlapped] == \
        [(p.id, [(k.phrase, k.score, k.category) for k in p.keyphrases]) for p in sequential]
    assert sum(len(p.keyphrases) for p in overlapped) > len(test)  # the pools were not empty
    # every batch was retrieved by the background thread, in order
    assert [name for name, _ in watched.calls] == ["esrank-retrieval"] * 5
    assert [first for _, first in watched.calls] == [test[i].id for i in range(0, len(test), BATCH)]
    s = ranker.stats
    assert s.documents == len(test) and s.retrieval_s > 0 and s.retrieval_overlapped_s >= 0
    # the vote baseline too
    votes = [list(rank_documents(test, index, None, _settings(overlap=o), stats=st))
             for o, st in ((False, seq_stats), (True, ovl_stats))]
    assert [(p.id, p.keyphrases) for p in votes[0]] == [(p.id, p.keyphrases) for p in votes[1]]
    assert not _alive()


def test_next_batch_is_retrieved_while_this_one_is_encoded_and_never_two_ahead(corpus, index, encoder):
    test = corpus[1]
    watched = Watched(index)
    seen: list[bool] = []

    class Waiting(Encoder):
        def encode_documents(self, texts, batch_size=None):
            if not seen:  # encoding batch 0: the retrieval of batch 1 starts meanwhile
                seen.append(watched.event(1).wait(timeout=30))
            return super().encode_documents(texts, batch_size)

    ranker = Ranker(Waiting(encoder.model, "cpu", "fp32"))
    gen = rank_documents(test, watched, ranker, _settings())
    first = next(gen)
    assert seen == [True] and first.id == test[0].id
    time.sleep(0.3)  # room for a runaway thread to retrieve further: it must not
    assert len(watched.calls) == 2  # batch 0, and batch 1 while batch 0 was ranked
    rest = list(gen)
    assert [p.id for p in [first, *rest]] == [d.id for d in test]
    assert not _alive()


def test_a_failed_retrieval_is_raised_at_its_batch(corpus, index, encoder):
    test = corpus[1]
    got = []
    with pytest.raises(BackendError, match="on purpose"):
        for p in rank_documents(test, Watched(index, fail_on=2), Ranker(encoder), _settings()):
            got.append(p.id)
    assert got == [d.id for d in test[:2 * BATCH]]  # batches 0 and 1 delivered, then the error of batch 2
    assert not _alive()


def test_a_bad_input_record_is_raised_at_its_batch(corpus, index, encoder):
    test = corpus[1]

    def reader():
        yield from test[:BATCH + 1]
        raise InputError("bad record", source="docs.jsonl", line=6)

    got = []
    with pytest.raises(InputError, match="bad record"):
        for p in rank_documents(reader(), index, Ranker(encoder), _settings()):
            got.append(p.id)
    assert got == [d.id for d in test[:BATCH]]
    assert not _alive()


def test_closing_or_interrupting_ends_the_thread(corpus, index, encoder):
    test = corpus[1]
    gen = rank_documents(test, index, Ranker(encoder), _settings())
    next(gen)
    assert len(_alive()) == 1
    gen.close()
    assert not _alive()

    class Interrupted(Encoder):
        calls = 0

        def encode_documents(self, texts, batch_size=None):
            Interrupted.calls += 1
            if Interrupted.calls == 2:
                raise KeyboardInterrupt
            return super().encode_documents(texts, batch_size)

    got = []
    with pytest.raises(KeyboardInterrupt):
        for p in rank_documents(test, index, Ranker(Interrupted(encoder.model, "cpu", "fp32")), _settings()):
            got.append(p.id)
    assert got == [d.id for d in test[:BATCH]] and not _alive()


def test_blocked_input_does_not_hold_the_caller(corpus, index, encoder):
    """An input that blocks (a pipe with no more data yet) does not keep close() waiting."""
    release = threading.Event()
    test = corpus[1]

    def slow_input():
        yield from test[:BATCH]
        release.wait(timeout=60)
        yield from test[BATCH:]

    gen = rank_documents(slow_input(), index, Ranker(encoder), _settings())
    assert next(gen).id == test[0].id  # batch 0 ranked without waiting for more input
    t = time.perf_counter()
    gen.close()
    assert time.perf_counter() - t < 5
    release.set()


class Exclusive:
    """A tracker that meters energy per stage: stages must not overlap."""

    exclusive = True

    def __init__(self) -> None:
        self.stages: list[tuple[str, str]] = []

    def stage(self, name, items=0, **kw):
        import contextlib

        self.stages.append((name, threading.current_thread().name))
        return contextlib.nullcontext()


def test_an_energy_metering_tracker_keeps_stages_sequential(corpus, index, encoder):
    test = corpus[1][:2 * BATCH]
    tracker = Exclusive()
    watched = Watched(index)
    list(rank_documents(test, watched, Ranker(encoder), _settings(), tracker=tracker))
    main = threading.current_thread().name
    assert {name for name, _ in watched.calls} == {main} and not _alive()
    names = [n for n, _ in tracker.stages]
    assert names == ["neighbour_retrieval", "document_encoding", "candidate_encoding", "candidate_ranking"] * 2
    assert CostTracker(carbon=True).exclusive and not CostTracker(carbon=False).exclusive


def test_time_only_cost_records_add_up_without_double_counting(corpus, index, encoder):
    test = corpus[1]
    tracker = CostTracker(carbon=False)
    t = time.perf_counter()
    list(rank_documents(test, index, Ranker(encoder), _settings(), tracker=tracker))
    elapsed = time.perf_counter() - t
    recorded = sum(r.seconds for r in tracker.records)
    assert recorded <= elapsed  # stages are exclusive intervals of the caller's time
    retrieval = [r for r in tracker.records if r.stage == "neighbour_retrieval"]
    assert sum(r.items for r in retrieval) == len(test) and len(retrieval) == 6  # 5 batches, then the end


def test_documents_are_never_lost_between_batches(index, encoder):
    docs = [Document(f"d{i}", f"title {i} neural networks", "deep learning for keyphrase ranking") for i in range(9)]
    preds = list(rank_documents(docs, index, Ranker(encoder), _settings()))
    assert [p.id for p in preds] == [d.id for d in docs]


def test_a_request_of_one_batch_is_ranked_without_a_thread(corpus, index, encoder):
    """KeyphraseRanker (the library and `esrank serve`): a request that fits one batch has nothing to overlap, so
    it is retrieved in the caller's thread; a longer one, or a stream, still overlaps."""
    from esrank.ranking.api import KeyphraseRanker

    test = corpus[1]
    watched = Watched(index)
    kr = KeyphraseRanker(watched, Ranker(encoder), _settings(), index="overlap", model=None, method="mix")
    one = kr.rank_all(test[:BATCH])
    assert [p.id for p in one] == [d.id for d in test[:BATCH]]
    assert [name for name, _ in watched.calls] == [threading.current_thread().name]
    watched.calls.clear()
    kr.rank_all(test[:BATCH + 1])
    assert [name for name, _ in watched.calls] == ["esrank-retrieval"] * 2
    watched.calls.clear()
    list(kr.rank(iter(test[:BATCH])))
    assert [name for name, _ in watched.calls] == ["esrank-retrieval"]
