"""Contrastive losses for fine-tuning the keyphrase bi-encoder (Sentence-Transformers losses).

A training batch holds N (document, gold keyphrase) pairs as the columns ``anchor`` (document text),
``positive`` (keyphrase), optionally ``negative_1 … negative_n`` (hard negatives from neighbour pools),
and ``label``: the index of the pair in a :class:`PairTable`. The table tells the loss which document
each pair belongs to and which keyphrases (by stemmed form) are gold for it, so the mask is right
whatever lands in one batch: two pairs of one document, or one keyphrase string gold for two documents.

Scores: S = scale · cos(d_i, p_j) over the columns [positives (N) | negative_1 (N) | … | negative_n (N)].

* ``masked-mnr`` (:class:`MaskedMultipleNegativesRankingLoss`): for row i, every column whose keyphrase is
  a gold keyphrase of document i, other than row i's own positive, is set to −∞ before the softmax; the
  loss is the mean cross-entropy of the positive column.
* ``mnr``: Sentence-Transformers' ``MultipleNegativesRankingLoss`` (no mask; the ablation).
* ``multilabel-supcon`` (:class:`MultiLabelSupConLoss`): all columns gold for document i are positives
  together: loss_i = −1/|P(i)| Σ_{p∈P(i)} log softmax(S_i)_p.

The cached variants (``Cached…``) compute the same values by GradCache (embeddings without graph in
mini-batches, loss and its gradient w.r.t. the embeddings, then a second mini-batched pass with graph),
so a batch of 1024 pairs fits in CPU memory.

These classes serve the pair path (one row per pair, Sentence-Transformers' trainer). The document-grouped
training of :mod:`.training` encodes each document once and calls :func:`contrastive_rows` directly with
the rows' document embeddings gathered per pair; its values and gradients equal these losses' on the same
pairs (tested there).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Hashable, Iterable, Mapping, Sequence

import torch
from torch import Tensor, nn

from ..text import stemmed_key

LOSS_NAMES = ("masked-mnr", "mnr", "multilabel-supcon")


@dataclass
class PairTable:
    """What the mask needs: each pair's document and keyphrase key, each document's gold keys."""

    pair_doc: Tensor  # (P,) document index of each pair
    column_keys: Tensor  # (P, 1 + n) key id of the positive and of each hard negative of each pair
    doc_gold: list[Tensor]  # document index -> sorted key ids of its gold keyphrases
    keys: list[str]  # key id -> stemmed key

    @classmethod
    def from_pairs(cls, pair_docs: Sequence[Hashable], pair_phrases: Sequence[str],
                   gold: Mapping[Hashable, Iterable[str]],
                   negatives: Sequence[Sequence[str]] | None = None) -> "PairTable":
        """Build the table from the pairs (document id, keyphrase), the gold keyphrases per document
        and, optionally, the hard-negative phrases of each pair (the same number for every pair)."""
        if len(pair_docs) != len(pair_phrases):
            raise ValueError("pair_docs and pair_phrases differ in length")
        key_ids: dict[str, int] = {}

        def kid(phrase: str) -> int:
            return key_ids.setdefault(stemmed_key(phrase), len(key_ids))

        doc_index: dict[Hashable, int] = {}
        doc_gold: list[Tensor] = []
        for doc, phrases in gold.items():
            doc_index[doc] = len(doc_gold)
            doc_gold.append(torch.tensor(sorted({kid(p) for p in phrases}), dtype=torch.long))
        n_neg = len(negatives[0]) if negatives else 0
        rows: list[list[int]] = []
        for i, phrase in enumerate(pair_phrases):
            row = [kid(phrase)]
            if negatives:
                if len(negatives[i]) != n_neg:
                    raise ValueError(f"pair {i} has {len(negatives[i])} negatives, expected {n_neg}")
                row.extend(kid(p) for p in negatives[i])
            rows.append(row)
        try:
            pair_doc = torch.tensor([doc_index[d] for d in pair_docs], dtype=torch.long)
        except KeyError as e:
            raise ValueError(f"pair document {e.args[0]!r} has no gold keyphrases in `gold`") from None
        keys = [""] * len(key_ids)
        for k, i in key_ids.items():
            keys[i] = k
        col = torch.tensor(rows, dtype=torch.long).reshape(len(rows), 1 + n_neg)
        return cls(pair_doc, col, doc_gold, keys)

    @property
    def n_negatives(self) -> int:
        """Hard negatives per pair."""
        return self.column_keys.shape[1] - 1

    def gold_matrix(self, pair_ids: Tensor) -> Tensor:
        """(N, N·(1+n)) bool: column j's keyphrase is gold for row i's document (own positive included).

        Columns follow the batch layout: the N positives, then negative_1 of every row, and so on.
        """
        pair_ids = pair_ids.to("cpu", torch.long)
        cols = self.column_keys[pair_ids].T.reshape(-1)  # column-major: positives first, then negatives
        docs = self.pair_doc[pair_ids]
        uniq, inverse = torch.unique(docs, return_inverse=True)
        per_doc = torch.stack([torch.isin(cols, self.doc_gold[int(d)]) for d in uniq])
        return per_doc[inverse]


def _own_columns(rows: Tensor, n_cols: int) -> Tensor:
    own = torch.zeros(len(rows), n_cols, dtype=torch.bool, device=rows.device)
    own[torch.arange(len(rows), device=rows.device), rows] = True
    return own


def contrastive_rows(kind: str, anchors: Tensor, columns: Tensor, rows: Tensor, gold: Tensor | None,
                     scale: float) -> Tensor:
    """Per-row loss of some rows of the batch (``anchors`` their embeddings, ``rows`` their batch indices,
    which are also their positive columns) against all candidate columns."""
    a = nn.functional.normalize(anchors, p=2, dim=1)
    c = nn.functional.normalize(columns, p=2, dim=1)
    return loss_from_scores(kind, scale * (a @ c.T), rows, gold)


def loss_from_scores(kind: str, scores: Tensor, rows: Tensor, gold: Tensor | None) -> Tensor:
    """Per-row loss from scaled scores (r, M); ``gold`` (r, M) marks the columns gold for each row."""
    arange = torch.arange(len(rows), device=scores.device)
    positive = scores[arange, rows]
    if kind == "mnr":
        return torch.logsumexp(scores, dim=1) - positive
    if gold is None:
        raise ValueError(f"the {kind} loss needs the gold matrix of the batch")
    gold = gold.to(scores.device)
    own = _own_columns(rows, scores.shape[1])
    if kind == "masked-mnr":
        masked = scores.masked_fill(gold & ~own, float("-inf"))
        return torch.logsumexp(masked, dim=1) - positive
    if kind == "multilabel-supcon":
        positives = gold | own
        log_prob = scores - torch.logsumexp(scores, dim=1, keepdim=True)
        return -(log_prob * positives).sum(dim=1) / positives.sum(dim=1)
    raise ValueError(f"unknown loss kind {kind!r}; one of {', '.join(LOSS_NAMES)}")


class _KeyphraseLoss(nn.Module):
    kind = "masked-mnr"

    def __init__(self, model: nn.Module, table: PairTable, scale: float = 20.0) -> None:
        super().__init__()
        if not scale > 0:
            raise ValueError("scale must be positive")
        self.model = model
        self.table = table
        self.scale = scale

    def _layout(self, embeddings: Sequence[Tensor], labels: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        if len(embeddings) < 2:
            raise ValueError(f"expected at least 2 embedding columns, got {len(embeddings)}")
        if len(embeddings) - 2 != self.table.n_negatives:
            raise ValueError(f"batch has {len(embeddings) - 2} negative columns, the pair table "
                             f"{self.table.n_negatives}")
        if labels is None:
            raise ValueError("the batch needs a 'label' column holding the pair index into the PairTable")
        anchors = embeddings[0]
        columns = torch.cat(list(embeddings[1:]), dim=0)
        return anchors, columns, self.table.gold_matrix(labels)

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor) -> Tensor:
        """Loss of one batch (Sentence-Transformers loss signature; labels are pair indices)."""
        from sentence_transformers.base.losses.merged_forward import embed_columns

        return self.compute_loss_from_embeddings(embed_columns(self.model, sentence_features), labels)

    def compute_loss_from_embeddings(self, embeddings: Sequence[Tensor], labels: Tensor) -> Tensor:
        """Loss from the column embeddings [anchor, positive, negative_1, …]."""
        anchors, columns, gold = self._layout(embeddings, labels)
        rows = torch.arange(len(anchors), device=anchors.device)
        return contrastive_rows(self.kind, anchors, columns, rows, gold, self.scale).mean()

    def get_config_dict(self) -> dict[str, Any]:
        """Hyper-parameters for the model card."""
        return {"scale": self.scale, "kind": self.kind, "hard_negatives": self.table.n_negatives}

    @property
    def temperature(self) -> float:
        """1 / scale."""
        return 1.0 / self.scale


class MaskedMultipleNegativesRankingLoss(_KeyphraseLoss):
    """MNR where the other gold keyphrases of an anchor's document are masked out of its softmax."""

    kind = "masked-mnr"


class MultiLabelSupConLoss(_KeyphraseLoss):
    """Multi-label supervised contrastive loss: every gold keyphrase of the anchor in the batch is a positive."""

    kind = "multilabel-supcon"


def _cached_base() -> type:
    from sentence_transformers.base.losses.gradcache import CachedLossMixin

    return CachedLossMixin


class _CachedKeyphraseLoss(_cached_base(), _KeyphraseLoss):  # type: ignore[misc]
    def __init__(self, model: nn.Module, table: PairTable, scale: float = 20.0, mini_batch_size: int = 32,
                 show_progress_bar: bool = False) -> None:
        _KeyphraseLoss.__init__(self, model, table, scale)
        self.mini_batch_size = mini_batch_size
        self.mini_batch_num_tokens = None
        self.show_progress_bar = show_progress_bar

    def calculate_loss(self, reps: list[list[Tensor]], labels: Tensor | None = None, *,
                       with_backward: bool = False) -> Tensor:
        """The loss over the whole batch from per-mini-batch embeddings, chunked over rows."""
        embeddings = [torch.cat(r) for r in reps]
        anchors, columns, gold = self._layout(embeddings, labels)
        n = len(anchors)
        total: Tensor | float = 0.0
        for begin in range(0, n, self.mini_batch_size):
            end = min(begin + self.mini_batch_size, n)
            rows = torch.arange(begin, end, device=anchors.device)
            part = contrastive_rows(self.kind, anchors[begin:end], columns, rows, gold[begin:end], self.scale)
            part = part.sum() / n
            if with_backward:
                part.backward()
                part = part.detach()
            total = total + part
        return total  # type: ignore[return-value]

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor) -> Tensor:
        """Loss of one batch, by gradient caching."""
        return self.forward_cached(list(sentence_features), labels)  # type: ignore[operator]

    def get_config_dict(self) -> dict[str, Any]:
        """Hyper-parameters for the model card."""
        return {**_KeyphraseLoss.get_config_dict(self), "mini_batch_size": self.mini_batch_size}


class CachedMaskedMultipleNegativesRankingLoss(_CachedKeyphraseLoss):
    """Gradient-cached :class:`MaskedMultipleNegativesRankingLoss` (same values, bounded memory)."""

    kind = "masked-mnr"


class CachedMultiLabelSupConLoss(_CachedKeyphraseLoss):
    """Gradient-cached :class:`MultiLabelSupConLoss`."""

    kind = "multilabel-supcon"


def make_loss(name: str, model: nn.Module, table: PairTable, *, scale: float = 20.0, cached: bool = False,
              mini_batch_size: int = 32) -> nn.Module:
    """The loss called ``name`` (masked-mnr | mnr | multilabel-supcon), cached or not."""
    if name == "mnr":
        from sentence_transformers.sentence_transformer.losses import (
            CachedMultipleNegativesRankingLoss,
            MultipleNegativesRankingLoss,
        )

        if cached:
            return CachedMultipleNegativesRankingLoss(model, scale=scale,  # type: ignore[arg-type]
                                                      mini_batch_size=mini_batch_size)
        return MultipleNegativesRankingLoss(model, scale=scale)  # type: ignore[arg-type]
    classes = {
        "masked-mnr": (MaskedMultipleNegativesRankingLoss, CachedMaskedMultipleNegativesRankingLoss),
        "multilabel-supcon": (MultiLabelSupConLoss, CachedMultiLabelSupConLoss),
    }
    if name not in classes:
        from ..errors import ConfigError

        raise ConfigError(f"unknown loss {name!r}; use one of {', '.join(LOSS_NAMES)}")
    plain, cached_cls = classes[name]
    if cached:
        return cached_cls(model, table, scale=scale, mini_batch_size=mini_batch_size)
    return plain(model, table, scale=scale)
