"""Encoder runtimes beyond torch: the model exported to ONNX (run by ONNX Runtime) or to OpenVINO IR, in fp32 or
int8, stored next to the Sentence-Transformers model with a quality check (cosine and top-5 agreement with torch fp32).

Layout of an export (``MODEL/onnx/`` or ``MODEL/openvino/``; for the packaged default model or a read-only model
directory, ``$ESRANK_EXPORT_DIR/<fingerprint>/<runtime>/``, default ``~/.cache/esrank/exports``)::

    model.onnx | model.xml+model.bin              fp32 graph (the whole Sentence-Transformers forward: pooling too)
    model_int8.onnx | model_int8.xml+model_int8.bin   int8: ONNX per-channel dynamic / OpenVINO static (NNCF),
                                                      calibrated on documents
    esrank_runtime.json                         model fingerprint, and per variant the check and its speed-up

Int8 is per-channel dynamic (ONNX Runtime) or static and calibrated (OpenVINO, NNCF) only: per-tensor dynamic int8
loses too much (embedding cosine about 0.85 to fp32).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import ConfigError, MissingExtraError

RUNTIMES = ("auto", "torch", "onnx", "openvino")
EXPORT_RUNTIMES = ("onnx", "openvino")
VARIANTS = ("fp32", "int8")
META_FILE = "esrank_runtime.json"
MIN_COSINE = 0.98          # smallest document-embedding cosine to torch fp32 on the check texts
MIN_SAME_TOP5 = 0.7        # share of check documents whose top-5 keyphrases are the same set as with torch fp32
CHECK_DOCUMENTS = 90       # documents of the bundled sample corpus used by the check
CALIBRATION_DOCUMENTS = 128
_PACKAGES = {"onnx": ("onnxruntime", "onnx"), "openvino": ("openvino", "openvino")}
_FILES = {("onnx", "fp32"): ["model.onnx"], ("onnx", "int8"): ["model_int8.onnx"],
          ("openvino", "fp32"): ["model.bin", "model.xml"], ("openvino", "int8"): ["model_int8.bin", "model_int8.xml"]}


def require(runtime: str, purpose: str | None = None) -> None:
    """Fail with a one-line 'pip install esrank[...]' error when the runtime's packages are missing."""
    dist, extra = _PACKAGES[runtime]
    mods = ["onnxruntime", "onnx"] if runtime == "onnx" else ["openvino"]
    for mod in mods:
        try:
            __import__(mod)
        except ImportError:
            raise MissingExtraError(mod if mod != "onnxruntime" else dist, extra,
                                    purpose or f"--runtime {runtime}") from None


def available(runtime: str) -> bool:
    """Whether the packages of a runtime are installed."""
    try:
        require(runtime)
    except MissingExtraError:
        return False
    return True


def export_cache_dir() -> Path:
    """Where exports of read-only or packaged models go: $ESRANK_EXPORT_DIR or ~/.cache/esrank/exports."""
    env = os.environ.get("ESRANK_EXPORT_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "esrank" / "exports"


def export_root(model_ref: str, fingerprint: str, out: str | os.PathLike[str] | None = None) -> Path:
    """The directory holding a model's ``onnx/`` and ``openvino/`` exports."""
    if out is not None:
        return Path(out)
    from .encoder import default_model_path

    path = Path(model_ref)
    packaged = path.is_dir() and path.resolve() == default_model_path().resolve()
    if path.is_dir() and not packaged and os.access(path, os.W_OK):
        return path
    return export_cache_dir() / fingerprint


# ---------------------------------------------------------------- export


class _Forward(torch.nn.Module):
    """The Sentence-Transformers forward from named token tensors to the sentence embedding."""

    def __init__(self, st: Any, names: Sequence[str]) -> None:
        super().__init__()
        self.st = st
        self.names = list(names)

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        out = self.st(dict(zip(self.names, tensors)))
        return out["sentence_embedding"]


def _features(st: Any, texts: Sequence[str]) -> dict[str, Any]:
    prep = getattr(st, "preprocess", None) or st.tokenize  # sentence-transformers >= 6: preprocess
    feats = prep(list(texts))
    return {k: v for k, v in feats.items() if isinstance(v, torch.Tensor)}


def export_onnx_graph(st: Any, path: Path) -> None:
    """Write the fp32 ONNX graph of a Sentence-Transformers model (dynamic batch and length)."""
    import warnings

    require("onnx", "ONNX export")
    feats = _features(st, ["an example sentence for tracing", "and another, somewhat longer one to pad the first"])
    names = list(feats)
    axes = {n: {0: "batch", 1: "tokens"} for n in names} | {"sentence_embedding": {0: "batch"}}
    st.eval()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Forward(st, names).eval(), tuple(feats[n] for n in names), str(path),
                          input_names=names, output_names=["sentence_embedding"], dynamic_axes=axes,
                          opset_version=17, dynamo=False)


def _calibration_features(st: Any, texts: Sequence[str], batch: int = 8) -> list[dict[str, np.ndarray]]:
    texts = list(texts)[:CALIBRATION_DOCUMENTS]
    return [{k: v.numpy().astype(np.int64) for k, v in _features(st, texts[i:i + batch]).items()}
            for i in range(0, len(texts), batch)]


def _write_variant(st: Any, runtime: str, variant: str, workdir: Path, calibration: Sequence[str] | None) -> None:
    """Write one variant's files into workdir (a temporary directory)."""
    onnx_fp32 = workdir / "model.onnx"
    if not onnx_fp32.exists():
        export_onnx_graph(st, onnx_fp32)
    if runtime == "onnx":
        if variant == "int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantize_dynamic(str(onnx_fp32), str(workdir / "model_int8.onnx"), per_channel=True,
                             weight_type=QuantType.QInt8)
        return
    require("openvino", "OpenVINO export")
    import openvino as ov

    model = ov.convert_model(str(onnx_fp32))
    if variant == "int8":
        try:
            import nncf
        except ImportError:
            raise MissingExtraError("nncf", "openvino", "OpenVINO int8") from None
        if not calibration:
            raise ConfigError("OpenVINO int8 is calibrated on documents: give calibration documents")
        data = _calibration_features(st, calibration)
        model = nncf.quantize(model, nncf.Dataset(data), model_type=nncf.ModelType.TRANSFORMER,
                              subset_size=len(data))
        ov.save_model(model, str(workdir / "model_int8.xml"), compress_to_fp16=False)
    else:
        ov.save_model(model, str(workdir / "model.xml"), compress_to_fp16=False)


@dataclass
class Check:
    """Agreement of a runtime variant with torch fp32 on fixed texts, and its speed relative to torch fp32."""

    min_cosine: float
    mean_cosine: float
    same_top5: float
    speedup: float
    documents: int

    @property
    def passed(self) -> bool:
        """Whether the variant is close enough to torch fp32 to be used."""
        return self.min_cosine >= MIN_COSINE and self.same_top5 >= MIN_SAME_TOP5

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {"min_cosine": round(self.min_cosine, 5), "mean_cosine": round(self.mean_cosine, 5),
                "same_top5": round(self.same_top5, 4), "speedup_vs_torch_fp32": round(self.speedup, 3),
                "documents": self.documents, "passed": self.passed,
                "bar": {"min_cosine": MIN_COSINE, "same_top5": MIN_SAME_TOP5}}


def check_texts() -> tuple[list[str], list[str]]:
    """The fixed check set: the bundled sample corpus' documents and all their gold keyphrases."""
    from ..corpus import read_documents, sample_corpus_path

    docs = list(read_documents(sample_corpus_path()))[:CHECK_DOCUMENTS]
    phrases = sorted({p for d in docs for p in d.keyphrases})
    return [d.full_text for d in docs], phrases


def _torch_fp32(st: Any, texts: Sequence[str]) -> np.ndarray:
    with torch.inference_mode():
        emb = st.encode(list(texts), batch_size=32, convert_to_numpy=True, normalize_embeddings=True,
                        show_progress_bar=False)
    return np.asarray(emb, dtype=np.float32)


def run_check(st: Any, model: "ExportedModel", texts: Sequence[str], phrases: Sequence[str]) -> Check:
    """Cosine of document embeddings to torch fp32, same top-5 keyphrases, and speed-up (same run)."""
    t0 = time.perf_counter()
    ref = _torch_fp32(st, texts)
    t_ref = time.perf_counter() - t0
    model.encode(texts[:4], 32)  # warm-up (first-run graph compilation)
    t0 = time.perf_counter()
    got = model.encode(texts, 32)
    t_got = time.perf_counter() - t0
    cos = (ref * got).sum(1)
    ph = _torch_fp32(st, phrases)
    top_ref = np.argsort(-(ref @ ph.T), axis=1)[:, :5]
    top_got = np.argsort(-(got @ ph.T), axis=1)[:, :5]
    same = float(np.mean([set(a) == set(b) for a, b in zip(top_ref.tolist(), top_got.tolist())]))
    return Check(float(cos.min()), float(cos.mean()), same, t_ref / max(t_got, 1e-9), len(texts))


def read_meta(directory: Path) -> dict[str, Any]:
    """The esrank_runtime.json of an export directory ({} when there is none or it is unreadable)."""
    try:
        data = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)


def export(st: Any, fingerprint: str, root: Path, runtime: str, variant: str = "fp32", *,
           calibration: Sequence[str] | None = None, threads: int | None = None) -> dict[str, Any]:
    """Export one variant into root/<runtime>/ (files moved in atomically), check it, and record the check."""
    if runtime not in EXPORT_RUNTIMES:
        raise ConfigError(f"cannot export to runtime {runtime!r}; use {' or '.join(EXPORT_RUNTIMES)}")
    if variant not in VARIANTS:
        raise ConfigError(f"unknown quantisation {variant!r}; use int8 (or none for fp32)")
    require(runtime)
    target = root / runtime
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot write the export: {e.strerror}", source=str(target)) from None
    meta = read_meta(target)
    if meta.get("fingerprint") != fingerprint:
        meta = {"fingerprint": fingerprint, "runtime": runtime, "variants": {}}
    work = Path(tempfile.mkdtemp(dir=target, prefix=".export-"))
    try:
        _write_variant(st, runtime, variant, work, calibration)
        for name in _FILES[(runtime, variant)]:  # weights (.bin) before the graph that names them (.xml)
            os.replace(work / name, target / name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    texts, phrases = check_texts()
    check = run_check(st, ExportedModel(st, target, runtime, variant, threads=threads), texts, phrases)
    entry = {"files": _FILES[(runtime, variant)], "quantization": _method(runtime, variant, calibration),
             "check": check.to_json()}
    meta["variants"][variant] = entry
    _write_json(target / META_FILE, meta)
    return entry


def _method(runtime: str, variant: str, calibration: Sequence[str] | None) -> str:
    if variant == "fp32":
        return "none"
    if runtime == "onnx":
        return "dynamic int8, per-channel weights (ONNX Runtime)"
    return f"static int8 (NNCF), calibrated on {min(len(calibration or []), CALIBRATION_DOCUMENTS)} documents"


def usable_variants(root: Path, runtime: str, fingerprint: str) -> dict[str, dict[str, Any]]:
    """The variants of an export that belong to this model, have their files, and passed the check."""
    target = root / runtime
    meta = read_meta(target)
    if meta.get("fingerprint") != fingerprint:
        return {}
    out = {}
    for variant, entry in (meta.get("variants") or {}).items():
        files_ok = all((target / f).is_file() for f in _FILES.get((runtime, variant), ["?"]))
        if files_ok and entry.get("check", {}).get("passed"):
            out[variant] = entry
    return out


def choose(root: Path, runtime: str, fingerprint: str) -> tuple[str, str] | None:
    """(runtime, variant) to use: for auto the fastest passed variant of any export faster than torch."""
    best: tuple[float, str, str] | None = None
    for rt in (EXPORT_RUNTIMES if runtime == "auto" else (runtime,)):
        variants = usable_variants(root, rt, fingerprint)
        if not variants or (runtime == "auto" and not available(rt)):  # files first: importing openvino is slow
            continue
        for variant, entry in variants.items():
            speed = float(entry["check"].get("speedup_vs_torch_fp32", 0.0))
            if best is None or speed > best[0]:
                best = (speed, rt, variant)
    if best is None or (runtime == "auto" and best[0] <= 1.0):
        return None
    return best[1], best[2]


# ---------------------------------------------------------------- inference


class ExportedModel:
    """An exported Sentence-Transformers model run by ONNX Runtime or OpenVINO; the torch model tokenises."""

    def __init__(self, st: Any, directory: Path, runtime: str, variant: str = "fp32", *,
                 threads: int | None = None, precision: str = "fp32") -> None:
        require(runtime)
        self.st = st
        self.runtime = runtime
        self.variant = variant
        self.directory = directory
        threads = threads or torch.get_num_threads()
        files = _FILES[(runtime, variant)]
        if runtime == "onnx":
            import onnxruntime as ort

            so = ort.SessionOptions()
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
            so.log_severity_level = 3
            self._session = ort.InferenceSession(str(directory / files[0]), so, providers=["CPUExecutionProvider"])
            self._inputs = [i.name for i in self._session.get_inputs()]
        else:
            import openvino as ov

            config: dict[str, Any] = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
            if precision == "fp32":
                config["INFERENCE_PRECISION_HINT"] = "f32"
            self._compiled = ov.Core().compile_model(str(directory / files[-1]), "CPU", config)
            self._inputs = [p.get_any_name() for p in self._compiled.inputs]

    @property
    def name(self) -> str:
        """runtime-variant, e.g. onnx-int8 (the embedding-cache key suffix)."""
        return f"{self.runtime}-{self.variant}"

    def _run(self, feats: dict[str, np.ndarray]) -> np.ndarray:
        feed = {n: feats[n] for n in self._inputs}
        if self.runtime == "onnx":
            return np.asarray(self._session.run(None, feed)[0], dtype=np.float32)
        return np.asarray(self._compiled(feed)[0], dtype=np.float32)

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """(n, dim) L2-normalised float32 embeddings, in input order (batches formed by length: less padding)."""
        n = len(texts)
        if n == 0:
            return np.zeros((0, 0), dtype=np.float32)
        order = sorted(range(n), key=lambda i: -len(texts[i]))
        out: np.ndarray | None = None
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            feats = {k: v.numpy().astype(np.int64) for k, v in _features(self.st, [texts[i] for i in idx]).items()}
            emb = self._run(feats)
            if out is None:
                out = np.empty((n, emb.shape[1]), dtype=np.float32)
            out[idx] = emb
        assert out is not None
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


def open_runtime(st: Any, model_ref: str, fingerprint: str, runtime: str, *, threads: int | None = None,
                 precision: str = "fp32", export_dir: str | os.PathLike[str] | None = None) -> ExportedModel | None:
    """The exported model to encode documents with (None = torch); onnx/openvino export on first use."""
    if runtime not in RUNTIMES:
        raise ConfigError(f"unknown runtime {runtime!r}; use {', '.join(RUNTIMES)}")
    if runtime == "torch":
        return None
    root = export_root(model_ref, fingerprint, export_dir)
    if runtime != "auto":
        require(runtime)
    picked = choose(root, runtime, fingerprint)
    meta = read_meta(root / runtime) if runtime != "auto" else {}
    if picked is None and meta.get("fingerprint") == fingerprint and meta.get("variants"):
        raise ConfigError(f"the {runtime} export of this model failed its quality check "
                          f"(see {root / runtime / META_FILE}); use --runtime torch")
    if picked is None and runtime != "auto":
        # First use: export fp32 (and for ONNX the per-channel dynamic int8, which needs no calibration).
        from .. import progress

        if progress.enabled():
            import sys

            print(f"esrank: exporting the encoder to {runtime} into {root / runtime} (once)", file=sys.stderr)
        for variant in (("fp32", "int8") if runtime == "onnx" else ("fp32",)):
            export(st, fingerprint, root, runtime, variant, threads=threads)
        picked = choose(root, runtime, fingerprint)
        if picked is None:
            raise ConfigError(f"the {runtime} export of this model failed its quality check "
                              f"(see {root / runtime / META_FILE}); use --runtime torch")
    if picked is None:
        return None
    return ExportedModel(st, root / picked[0], picked[0], picked[1], threads=threads, precision=precision)


@dataclass
class ExportResult:
    """What ``export_model`` wrote: where, which runtime and variant, and its quality check."""

    directory: Path
    runtime: str
    variant: str
    quantization: str
    check: dict[str, Any]


def export_model(model: str | os.PathLike[str] | None, runtime: str, *, quantize: str = "none",
                 out: str | os.PathLike[str] | None = None, calibration: str | os.PathLike[str] | None = None,
                 threads: int | None = None) -> ExportResult:
    """Export a Sentence-Transformers model to ONNX or OpenVINO (fp32 or int8), check it, and record the check."""
    from .encoder import load_model, model_fingerprint, resolve_model

    if runtime not in EXPORT_RUNTIMES:
        raise ConfigError(f"cannot export to runtime {runtime!r}; use {' or '.join(EXPORT_RUNTIMES)}")
    variant = "fp32" if quantize in ("none", "fp32") else quantize
    if variant not in VARIANTS:
        raise ConfigError(f"--quantize takes none or int8, not {quantize!r}")
    require(runtime)
    texts: list[str] | None = None
    if runtime == "openvino" and variant == "int8":
        if calibration is None:
            raise ConfigError("OpenVINO int8 is calibrated on documents: give --calibration DATA "
                              "(the documents of the index the model ranks for)")
        from ..corpus import read_documents

        texts = []
        for doc in read_documents(Path(calibration)):
            texts.append(doc.full_text)
            if len(texts) >= CALIBRATION_DOCUMENTS:
                break
        if not texts:
            raise ConfigError("no documents to calibrate on", source=str(calibration))
    if threads is not None:
        torch.set_num_threads(threads)
    st = load_model(model, device="cpu")
    st.eval()
    fingerprint = model_fingerprint(st)
    root = export_root(resolve_model(model), fingerprint, out)
    entry = export(st, fingerprint, root, runtime, variant, calibration=texts, threads=threads)
    return ExportResult(root / runtime, runtime, variant, entry["quantization"], entry["check"])
