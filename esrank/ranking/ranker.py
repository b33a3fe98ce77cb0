"""Ranking candidate pools: the bi-encoder ranker (cosine of document and keyphrase embeddings, or its mix with
the neighbour vote) and the neighbour-vote baseline. Both return ``Prediction``s with a score and the PRMU category of each phrase."""
from __future__ import annotations

import os
import time
from pathlib import Path
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import torch

from ..stages import StageTracker, stage
from ..corpus import Document
from ..predictions import Prediction, ScoredPhrase
from ..text import StemmedText, classify_key, prepare
from .candidates import CandidatePool
from .encoder import CacheStats, EmbeddingCache, Encoder
from .mix import DEFAULT_WEIGHT, MixModel, mix_scores

if TYPE_CHECKING:
    from .profiles import KeyphraseProfiles


@dataclass
class RankStats:
    """Counts and the time split of ranking (retrieval time is the caller's to add).

    ``retrieval_s`` is the time ranking waited for retrieval; when retrieval ran in the background while
    documents were encoded (``RankSettings.overlap``), the retrieval time hidden that way is in
    ``retrieval_overlapped_s``, outside ``total_s`` (which stays the elapsed time of the stages).
    """

    documents: int = 0
    candidates: int = 0
    empty_pools: int = 0
    retrieval_s: float = 0.0
    document_encoding_s: float = 0.0
    candidate_encoding_s: float = 0.0
    scoring_s: float = 0.0
    cache: CacheStats = field(default_factory=CacheStats)
    retrieval_overlapped_s: float = 0.0

    @property
    def total_s(self) -> float:
        """Sum of the stages (the overlapped retrieval time not counted again)."""
        return self.retrieval_s + self.document_encoding_s + self.candidate_encoding_s + self.scoring_s

    def to_json(self) -> dict[str, Any]:
        """JSON form (times in seconds)."""
        return {
            "documents": self.documents, "candidates": self.candidates, "empty_pools": self.empty_pools,
            "retrieval_s": round(self.retrieval_s, 4), "document_encoding_s": round(self.document_encoding_s, 4),
            "candidate_encoding_s": round(self.candidate_encoding_s, 4), "scoring_s": round(self.scoring_s, 4),
            "retrieval_overlapped_s": round(self.retrieval_overlapped_s, 4), "cache": self.cache.to_json(),
        }

    def summary(self) -> str:
        """One line for the terminal."""
        t = self.total_s or 1e-9
        parts = [f"{name} {secs:.2f}s ({100 * secs / t:.0f}%)" for name, secs in (
            ("retrieval", self.retrieval_s), ("document encoding", self.document_encoding_s),
            ("candidate encoding", self.candidate_encoding_s), ("scoring", self.scoring_s))]
        rate = f", {self.documents / t:.1f} docs/s" if self.total_s else ""
        hidden = (f" (+{self.retrieval_overlapped_s:.2f}s of retrieval overlapped with encoding)"
                  if self.retrieval_overlapped_s >= 0.005 else "")
        return (f"ranked {self.documents} documents ({self.empty_pools} with no candidate){rate}; "
                + ", ".join(parts) + hidden + f"; keyphrase cache hit rate {100 * self.cache.hit_rate:.1f}%")



def _check_aligned(documents: Sequence[Document], pools: Sequence[CandidatePool]) -> None:
    if len(documents) != len(pools):
        raise ValueError(f"{len(documents)} documents but {len(pools)} candidate pools")
    for d, p in zip(documents, pools):
        if d.id != p.doc_id:
            raise ValueError(f"pool of {p.doc_id!r} given for document {d.id!r}")


def _categorised(doc: Document, pool: CandidatePool, scores: Sequence[float], top_n: int | None,
                 prepared: StemmedText | None = None) -> Prediction:
    order = sorted(range(len(pool.candidates)), key=lambda i: (-scores[i], i))
    if top_n is not None:
        order = order[:top_n]
    if prepared is None:
        prepared = prepare(doc.title, doc.text)
    items = [ScoredPhrase(pool.candidates[i].phrase, float(scores[i]), classify_key(pool.candidates[i].key, prepared))
             for i in order]
    return Prediction(doc.id, items)


class Ranker:
    """Bi-encoder ranker: an ``Encoder``, its keyphrase-embedding cache and cumulative ``RankStats``.

    With ``remember_documents`` the ranker keeps each document's embedding (by id and text), so ranking the
    same documents again (another k, another method) encodes them once. With ``profiles`` (the index's keyphrase
    profiles, ``esrank.ranking.profiles``) each pool it scores gets its profile features from the document
    embedding it computes anyway.
    """

    def __init__(self, encoder: Encoder, cache: EmbeddingCache | None = None, *,
                 remember_documents: bool = False, profiles: "KeyphraseProfiles | None" = None) -> None:
        self.encoder = encoder
        self.profiles = profiles
        self.cache = cache if cache is not None else EmbeddingCache(encoder)
        self.stats = RankStats(cache=self.cache.stats)
        self._documents: dict[tuple[str, str], torch.Tensor] | None = {} if remember_documents else None

    @classmethod
    def load(cls, model: str | os.PathLike[str] | None = None, *, device: str = "auto", precision: str = "auto",
             threads: int | None = None, batch_size: int | None = None, max_seq_length: int | None = None,
             cache_size: int = 200_000, disk_cache: bool | str | os.PathLike[str] = False,
             remember_documents: bool = False, runtime: str | None = None) -> "Ranker":
        """A ranker on a model (default all-MiniLM-L6-v2, offline); ``disk_cache`` True or a directory.

        ``runtime`` auto|torch|onnx|openvino encodes the documents (see ``Encoder.load``; None: the default). The
        keyphrase profiles a model directory holds (``esrank.ranking.profiles.PROFILE_FILE``) are read when they
        were made with these weights.
        """
        from .encoder import resolve_model
        from .profiles import model_profiles

        enc = Encoder.load(model, device=device, precision=precision, threads=threads, batch_size=batch_size,
                           max_seq_length=max_seq_length, runtime=runtime)
        source = Path(resolve_model(model))
        profiles = model_profiles(source, enc.fingerprint) if source.is_dir() else None
        return cls(enc, EmbeddingCache(enc, capacity=cache_size, disk=disk_cache),
                   remember_documents=remember_documents, profiles=profiles)

    def _encode_documents(self, documents: Sequence[Document]) -> torch.Tensor:
        if self._documents is None:
            return self.encoder.encode_documents([d.full_text for d in documents])
        keys = [(d.id, d.full_text) for d in documents]
        todo = list(dict.fromkeys(k for k in keys if k not in self._documents))
        if todo:
            for key, emb in zip(todo, self.encoder.encode_documents([text for _, text in todo])):
                self._documents[key] = emb
        return torch.stack([self._documents[k] for k in keys]) if keys else torch.zeros(0, self.encoder.dim)

    def cosine_scores(self, documents: Sequence[Document], pools: Sequence[CandidatePool], *,
                      tracker: StageTracker | None = None) -> list[list[float]]:
        """The cosine of each candidate with its document, pool by pool (the time split accumulates)."""
        _check_aligned(documents, pools)
        st = self.stats
        t0 = time.perf_counter()
        with stage(tracker, "document_encoding", len(documents)):
            doc_emb = self._encode_documents(documents)
        if self.profiles is not None:
            emb = doc_emb.numpy()
            for i, pool in enumerate(pools):
                self.profiles.apply(pool, emb[i], pool.own_keys)
        t1 = time.perf_counter()
        phrases = [c.phrase for p in pools for c in p.candidates]
        with stage(tracker, "candidate_encoding", len(documents)):
            cand_emb = self.cache.encode(phrases)
        t2 = time.perf_counter()
        out: list[list[float]] = []
        start = 0
        for i, pool in enumerate(pools):
            n = len(pool.candidates)
            out.append((cand_emb[start:start + n] @ doc_emb[i]).tolist() if n else [])
            start += n
        st.documents += len(documents)
        st.candidates += len(phrases)
        st.document_encoding_s += t1 - t0
        st.candidate_encoding_s += t2 - t1
        st.scoring_s += time.perf_counter() - t2
        return out

    def rank_pools(self, documents: Sequence[Document], pools: Sequence[CandidatePool], top_n: int | None = None,
                   *, tracker: StageTracker | None = None, mix_weight: float | None = None,
                   mix_model: "MixModel | None" = None) -> list[Prediction]:
        """Rank each pool by cosine of document and keyphrase embeddings; with ``mix_model`` by its score (a pool
        without keyphrase frequencies, when the model needs them: by the linear mix with ``mix_weight``), with
        ``mix_weight`` alone by the linear mix."""
        cosines = self.cosine_scores(documents, pools, tracker=tracker)
        t0 = time.perf_counter()
        out: list[Prediction] = []
        with stage(tracker, "candidate_ranking", len(documents)):
            for doc, pool, cos in zip(documents, pools, cosines):
                if not pool.candidates:
                    self.stats.empty_pools += 1
                    out.append(Prediction(doc.id, []))
                    continue
                prepared = prepare(doc.title, doc.text)
                if mix_model is not None and mix_model.usable(pool):
                    scores = mix_model.scores(doc, pool, cos, prepared)
                elif mix_weight is not None or mix_model is not None:
                    scores = mix_scores(cos, [c.vote for c in pool.candidates],
                                        mix_weight if mix_weight is not None else DEFAULT_WEIGHT)
                else:
                    scores = cos
                out.append(_categorised(doc, pool, scores, top_n, prepared))
        self.stats.scoring_s += time.perf_counter() - t0
        return out

    def close(self) -> None:
        """Close the disk cache, if any."""
        self.cache.close()


def vote_rank_pools(documents: Sequence[Document], pools: Sequence[CandidatePool], top_n: int | None = None,
                    *, stats: RankStats | None = None, tracker: StageTracker | None = None) -> list[Prediction]:
    """Neighbour-vote baseline: candidates ranked by the summed BM25 score of the neighbours carrying them."""
    _check_aligned(documents, pools)
    t0 = time.perf_counter()
    out: list[Prediction] = []
    with stage(tracker, "candidate_ranking", len(documents)):
        for doc, pool in zip(documents, pools):
            if not pool.candidates and stats is not None:
                stats.empty_pools += 1
            out.append(_categorised(doc, pool, [c.vote for c in pool.candidates], top_n))
    if stats is not None:
        stats.documents += len(documents)
        stats.candidates += sum(len(p.candidates) for p in pools)
        stats.scoring_s += time.perf_counter() - t0
    return out


def embedding_agreement(encoder: Encoder, texts: Sequence[str], precision: str) -> float:
    """Smallest cosine between the embeddings at ``precision`` and at fp32 (1.0 = identical)."""
    ref = Encoder(encoder.model, encoder.device, "fp32", encoder.batch_size).encode(texts)
    low = Encoder(encoder.model, encoder.device, precision, encoder.batch_size).encode(texts)
    return float(torch.nn.functional.cosine_similarity(ref, low, dim=1).min())
