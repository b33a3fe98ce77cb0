"""Keyphrase profiles: for each keyphrase of the index, the sum of the embeddings of the indexed documents that
carry it (a Rocchio-style centroid), and how many they are.

The profile cosine of a candidate is the cosine between the query document's embedding and that sum: whether the
document is like the documents the keyphrase was given to, over the whole index rather than the k neighbours. It
tells a popular keyphrase that fits this kind of document from one that is merely popular. In a development
comparison on acm-dev (docs/benchmarks.md, "New evidence tried for absent keyphrases") it added +1.44 absent R@Q
(p < 0.001) to the mix model.

Sums, not means, are stored, with the counts, so that an indexed document can be left out of its own profile (the
mix model is fitted on indexed validation documents, each excluded from its own neighbours): its embedding is
subtracted from the profiles of its own keyphrases.

A model directory holds its profiles as ``PROFILE_FILE`` (``esrank train --profiles`` writes them after
fine-tuning, ``esrank encode-keyphrases --profiles`` rewrites them); ``Ranker.load`` reads them from there.

Files (``save``/``open``), for a profile set at ``PATH``::

    PATH                   the table: format, model fingerprint, dimension, index documents, keys and counts in
                           row order, and the matrix file's name and size
    PATH.sums-TOKEN.npy    the sums (keys × dim float32), memory-mapped when read

The matrix is written under a new name first, then the table (temporary file, renamed): a reader sees the old pair
or the new pair. A table of another model, or naming a missing or truncated matrix, is refused with a clear error.
"""
from __future__ import annotations

import json
import logging
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, AbstractSet, Iterable, Sequence

import numpy as np

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..corpus import Document
    from ..retrieval.base import Backend
    from .mix import MixModel
    from .ranker import Ranker
    from .candidates import CandidatePool
    from .encoder import Encoder

FORMAT = "esrank-keyphrase-profiles"
VERSION = 1
PROFILE_FILE = "esrank_profiles.json"  # in a model directory

log = logging.getLogger(__name__)


class KeyphraseProfiles:
    """Per stemmed keyphrase key: the summed embedding of the indexed documents carrying it, and their count."""

    def __init__(self, keys: Sequence[str], sums: np.ndarray, counts: np.ndarray, *, fingerprint: str,
                 documents: int) -> None:
        self.rows: dict[str, int] = {k: i for i, k in enumerate(keys)}
        self.keys = list(keys)
        self.sums = sums
        self.counts = np.asarray(counts, dtype=np.int64)
        self.fingerprint = fingerprint
        self.documents = documents
        self._sq_norms = np.einsum("ij,ij->i", sums, sums, dtype=np.float64) if len(keys) else np.zeros(0)

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return int(self.sums.shape[1]) if self.sums.ndim == 2 else 0

    @classmethod
    def build(cls, encoder: "Encoder", documents: Iterable["Document"], *, window: int = 1024,
              total: int | None = None) -> "KeyphraseProfiles":
        """Encode every document that has keyphrases (``Encoder.encode_documents``, windows of ``window``
        documents sorted by length) and add its embedding to the profile of each of its keyphrase keys."""
        from ..corpus import chunked
        from ..progress import bar
        from ..text import stemmed_key

        rows: dict[str, int] = {}
        sums: list[np.ndarray] = []
        counts: list[int] = []
        n = 0
        with bar(total=total, desc="keyphrase profiles", unit="doc") as progress_bar:
            for batch in chunked((d for d in documents if d.keyphrases), window):
                emb = encoder.encode_documents([d.full_text for d in batch]).numpy().astype(np.float32)
                for doc, e in zip(batch, emb):
                    for key in {k for k in map(stemmed_key, doc.keyphrases) if k}:
                        row = rows.get(key)
                        if row is None:
                            rows[key] = len(sums)
                            sums.append(e.astype(np.float64))
                            counts.append(1)
                        else:
                            sums[row] += e
                            counts[row] += 1
                n += len(batch)
                progress_bar.update(len(batch))
        dim = encoder.dim
        matrix = np.vstack(sums).astype(np.float32) if sums else np.zeros((0, dim), dtype=np.float32)
        return cls(list(rows), matrix, np.asarray(counts, dtype=np.int64), fingerprint=encoder.fingerprint,
                   documents=n)

    def apply(self, pool: "CandidatePool", embedding: np.ndarray, own_keys: AbstractSet[str] = frozenset()) -> None:
        """Give each candidate of ``pool`` its profile cosine and mean cosine with the document ``embedding``
        (L2-normalised); ``own_keys``: the document's own keyphrase keys when it is itself in the profiles (its
        embedding is then taken out of those profiles). A keyphrase no other document carries scores 0."""
        e = np.asarray(embedding, dtype=np.float64)
        rows = np.array([self.rows.get(c.key, -1) for c in pool.candidates], dtype=np.int64)
        known = rows >= 0
        dot = np.zeros(len(rows))
        sq = np.zeros(len(rows))
        count = np.zeros(len(rows))
        if known.any():
            at = rows[known]
            dot[known] = np.asarray(self.sums[at], dtype=np.float64) @ e
            sq[known] = self._sq_norms[at]
            count[known] = self.counts[at]
        if own_keys:
            mine = known & np.array([c.key in own_keys for c in pool.candidates])
            ee = float(e @ e)
            sq = np.where(mine, sq - 2 * dot + ee, sq)
            dot = np.where(mine, dot - ee, dot)
            count = np.where(mine, count - 1, count)
        ok = (count > 0) & (sq > 1e-12)
        cosine = np.where(ok, dot / np.sqrt(np.where(ok, sq, 1.0)), 0.0)
        mean = np.where(ok, dot / np.where(ok, count, 1.0), 0.0)
        for c, pc, pm in zip(pool.candidates, cosine.tolist(), mean.tolist()):
            c.profile_cosine, c.profile_mean = pc, pm
        pool.profiled = True

    # -- files ---------------------------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the table at ``path`` and its matrix next to it, atomically (see the module's docstring)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        old = _matrix_name(path)
        matrix = path.with_name(f"{path.name}.sums-{uuid.uuid4().hex[:12]}.npy")
        with open(matrix, "wb") as fh:
            np.save(fh, np.ascontiguousarray(self.sums, dtype=np.float32))
            fh.flush()
            os.fsync(fh.fileno())
        table = {"format": FORMAT, "version": VERSION, "fingerprint": self.fingerprint, "dim": self.dim,
                 "documents": self.documents, "matrix": matrix.name, "matrix_bytes": matrix.stat().st_size,
                 "keys": self.keys, "counts": self.counts.tolist()}
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(table, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            matrix.unlink(missing_ok=True)
            raise
        if old is not None and old != matrix.name:
            (path.parent / old).unlink(missing_ok=True)
        return path

    @classmethod
    def open(cls, path: str | os.PathLike[str], fingerprint: str | None = None) -> "KeyphraseProfiles":
        """Read profiles written by ``save`` (the matrix memory-mapped); ConfigError when the file is missing, not
        profiles, truncated, or (``fingerprint`` given) made with another model."""
        path = Path(path)
        try:
            with open(path, encoding="utf-8") as fh:
                table = json.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"no keyphrase profiles at {path}: write them with "
                              "`esrank encode-keyphrases --index NAME --profiles FILE`") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read keyphrase profiles {path}: {exc}") from None
        if not isinstance(table, dict) or table.get("format") != FORMAT:
            raise ConfigError(f"{path} is not an esrank keyphrase profile file")
        if fingerprint is not None and table.get("fingerprint") != fingerprint:
            raise ConfigError(f"the keyphrase profiles {path} were made with another model; write them again with "
                              "this model (`esrank encode-keyphrases --model MODEL --profiles FILE`)")
        matrix = path.parent / str(table.get("matrix", ""))
        try:
            if matrix.stat().st_size != int(table["matrix_bytes"]):
                raise ConfigError(f"the matrix of the keyphrase profiles {path} is truncated")
            sums = np.load(matrix, mmap_mode="r")
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"cannot read the matrix of the keyphrase profiles {path}: {exc}") from None
        keys, counts = list(table["keys"]), np.asarray(table["counts"], dtype=np.int64)
        if sums.shape != (len(keys), int(table["dim"])) or len(counts) != len(keys):
            raise ConfigError(f"the keyphrase profiles {path} do not match their matrix")
        return cls(keys, sums, counts, fingerprint=str(table["fingerprint"]), documents=int(table["documents"]))


def _matrix_name(path: Path) -> str | None:
    """The matrix file named by an existing table at ``path`` (None when there is none or it is unreadable)."""
    try:
        with open(path, encoding="utf-8") as fh:
            name = json.load(fh).get("matrix")
        return str(name) if name else None
    except (OSError, ValueError, AttributeError):
        return None


def own_profile_keys(documents: Sequence["Document"], indexed: AbstractSet[str]) -> list[frozenset[str]]:
    """Each document's own keyphrase keys when it is in ``indexed`` (its embedding is then in the profiles),
    else an empty set."""
    from ..text import stemmed_key

    return [frozenset(k for k in map(stemmed_key, d.keyphrases) if k) if d.id in indexed else frozenset()
            for d in documents]


def model_profiles(model_dir: str | os.PathLike[str], fingerprint: str) -> KeyphraseProfiles | None:
    """The profiles stored in a model directory (None when it has none; a warning and None when they cannot be
    used, e.g. written for other weights)."""
    path = Path(model_dir) / PROFILE_FILE
    if not path.is_file():
        return None
    try:
        return KeyphraseProfiles.open(path, fingerprint)
    except ConfigError as exc:
        log.warning("keyphrase profiles not used: %s", exc)
        return None


def write_model_profiles(ranker: "Ranker", backend: "Backend", model_dir: str | os.PathLike[str]) -> KeyphraseProfiles:
    """Encode every document of ``backend``'s index with ``ranker``'s encoder, store the profiles in the model
    directory (``PROFILE_FILE``) and give them to ``ranker``."""
    profiles = KeyphraseProfiles.build(ranker.encoder, backend.iter_documents(), total=backend.count())
    profiles.save(Path(model_dir) / PROFILE_FILE)
    ranker.profiles = profiles
    return profiles


def missing_profiles_note(mix_model: "MixModel | None", ranker: "Ranker | None") -> str | None:
    """What to tell the user when the mix model reads keyphrase profiles the ranker does not have (None: nothing
    is missing)."""
    if mix_model is None or ranker is None or not mix_model.needs_profiles or ranker.profiles is not None:
        return None
    return ("the mix model was fitted with keyphrase profiles, which the model directory does not hold for these "
            "weights: ranking by the linear mix; write them with "
            "`esrank encode-keyphrases --index NAME --model DIR --profiles`")
