"""Encoder runtimes (ONNX Runtime, OpenVINO) on the real all-MiniLM-L6-v2: agreement with torch fp32, the export
cache, `--runtime` through `esrank rank`, `esrank export-model`, and the one-line error of a missing extra."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from esrank.commands import main
from esrank.corpus import read_documents, sample_corpus_path, write_documents
from esrank.ranking import encoder as encoder_mod
from esrank.ranking.encoder import Encoder, default_model_path
from esrank.ranking.runtimes import META_FILE, ExportedModel, export_model

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _reset_default_runtime():
    yield
    encoder_mod.set_default_runtime(None)  # a CLI --runtime in one test must not leak into the next


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A writable copy of the packaged MiniLM: exports go next to it (MODEL/onnx, MODEL/openvino)."""
    out = tmp_path_factory.mktemp("model") / "minilm"
    shutil.copytree(default_model_path(), out, ignore=shutil.ignore_patterns("onnx", "openvino", "__pycache__"))
    return out


@pytest.fixture(scope="module")
def sample():
    docs = list(read_documents(sample_corpus_path()))
    phrases = sorted({p for d in docs for p in d.keyphrases})
    return [d.full_text for d in docs], phrases


@pytest.fixture(scope="module")
def reference(model_dir, sample):
    """torch fp32 embeddings of the sample documents and keyphrases."""
    enc = Encoder.load(str(model_dir), device="cpu", precision="fp32", threads=2, runtime="torch")
    texts, phrases = sample
    return enc.encode(texts).numpy(), enc.encode(phrases).numpy()


def agreement(reference, got):
    """Smallest document cosine to torch fp32, and the share of documents with the same top-5 keyphrases."""
    docs, phrases = reference
    cos = (docs * got).sum(1)
    top = lambda e: [set(r) for r in np.argsort(-(e @ phrases.T), axis=1)[:, :5].tolist()]  # noqa: E731
    same = np.mean([a == b for a, b in zip(top(docs), top(got))])
    return float(cos.min()), float(same)


@pytest.fixture(scope="module")
def onnx_encoder(model_dir):
    """--runtime onnx on a model without an export: exported (fp32 + per-channel int8) on first use."""
    assert not (model_dir / "onnx").exists()
    return Encoder.load(str(model_dir), device="cpu", precision="fp32", threads=2, runtime="onnx")


def test_onnx_exports_on_first_use_and_agrees_with_fp32(onnx_encoder, model_dir, reference, sample):
    meta = json.loads((model_dir / "onnx" / META_FILE).read_text())
    assert set(meta["variants"]) == {"fp32", "int8"}
    int8 = meta["variants"]["int8"]
    assert int8["quantization"].startswith("dynamic int8, per-channel")
    assert int8["check"]["passed"] and int8["check"]["min_cosine"] >= 0.98
    assert meta["variants"]["fp32"]["check"]["min_cosine"] > 0.9999
    # both passed their check, so the one measured faster at export is used (on a CPU without VNNI int8 can lose)
    speed = {v: e["check"]["speedup_vs_torch_fp32"] for v, e in meta["variants"].items()}
    assert onnx_encoder.runtime == f"onnx-{max(speed, key=speed.__getitem__)}"
    # the int8 variant itself, whichever was picked: its embeddings agree with torch fp32
    int8_encoder = Encoder.load(str(model_dir), device="cpu", precision="fp32", threads=2, runtime="torch")
    int8_encoder.exported = ExportedModel(int8_encoder.model, model_dir / "onnx", "onnx", "int8", threads=2)
    assert int8_encoder.runtime == "onnx-int8"
    got = int8_encoder.encode_documents(sample[0]).numpy()
    min_cos, same_top5 = agreement(reference, got)
    assert min_cos >= 0.98
    assert same_top5 >= 0.7  # most documents keep their top-5 keyphrases
    # results come back in input order although batches are formed by length (dynamic int8 quantises the
    # activations per batch, so alone and batched differ a little; another document's embedding differs a lot)
    one_by_one = np.stack([int8_encoder.encode_documents([t]).numpy()[0] for t in sample[0][:5]])
    cross = one_by_one @ got[:5].T
    assert (np.diag(cross) >= 0.98).all()
    assert [int(np.argmax(row)) for row in cross] == list(range(5))


def test_export_is_cached_and_reused(onnx_encoder, model_dir):
    files = sorted((model_dir / "onnx").iterdir())
    stamps = {p.name: p.stat().st_mtime_ns for p in files}
    again = Encoder.load(str(model_dir), device="cpu", precision="fp32", threads=2, runtime="onnx")
    assert again.runtime == onnx_encoder.runtime
    assert {p.name: p.stat().st_mtime_ns for p in sorted((model_dir / "onnx").iterdir())} == stamps
    assert not [p for p in files if p.name.startswith(".")]  # no leftovers of the atomic write
    # auto takes the export when its check passed and it was faster than torch fp32 when checked, else torch
    meta = json.loads((model_dir / "onnx" / META_FILE).read_text())
    speed = {f"onnx-{v}": e["check"]["speedup_vs_torch_fp32"] for v, e in meta["variants"].items()}
    fastest = max(speed, key=speed.__getitem__)
    auto = Encoder.load(str(model_dir), device="cpu", precision="fp32", threads=2, runtime="auto")
    assert auto.runtime == (fastest if speed[fastest] > 1.0 else "torch")


def test_export_of_changed_model_is_not_used(onnx_encoder, model_dir, tmp_path):
    """The export records the model fingerprint: another model's export is ignored, not silently used."""
    other = tmp_path / "other"
    shutil.copytree(model_dir, other)
    meta = json.loads((other / "onnx" / META_FILE).read_text())
    meta["fingerprint"] = "0" * 24
    (other / "onnx" / META_FILE).write_text(json.dumps(meta))
    auto = Encoder.load(str(other), device="cpu", precision="fp32", threads=2, runtime="auto")
    assert auto.runtime == "torch"


def test_openvino_int8_static_calibrated_agrees(model_dir, reference, sample, tmp_path):
    result = export_model(str(model_dir), "openvino", quantize="int8", calibration=sample_corpus_path(), threads=2)
    assert result.directory == model_dir / "openvino" and result.variant == "int8"
    assert result.quantization.startswith("static int8 (NNCF), calibrated on 90 documents")
    assert result.check["passed"], result.check
    assert (model_dir / "openvino" / "model_int8.xml").is_file()
    enc = Encoder.load(str(model_dir), device="cpu", precision="fp32", threads=2, runtime="openvino")
    assert enc.runtime == "openvino-int8"
    min_cos, same_top5 = agreement(reference, enc.encode_documents(sample[0]).numpy())
    assert min_cos >= 0.98 and same_top5 >= 0.7


def test_rank_and_export_model_cli(model_dir, tmp_path):
    docs = list(read_documents(sample_corpus_path()))
    write_documents(docs[:60], tmp_path / "train.jsonl")
    write_documents(docs[60:66], tmp_path / "test.jsonl")
    where = ["--index", "kp", "--path", str(tmp_path / "idx")]
    runner = CliRunner()
    r = runner.invoke(main, ["load", str(tmp_path / "train.jsonl"), *where])
    assert r.exit_code == 0, r.output
    out_dir = tmp_path / "exported"
    r = runner.invoke(main, ["export-model", str(model_dir), "--runtime", "openvino", "--out", str(out_dir),
                             "--threads", "2"])
    assert r.exit_code == 0, r.output
    assert "openvino fp32" in r.stderr and "check passed" in r.stderr
    assert (out_dir / "openvino" / "model.xml").is_file() and (out_dir / "openvino" / META_FILE).is_file()
    preds = {}
    for runtime in ("torch", "onnx"):
        out = tmp_path / f"{runtime}.jsonl"
        r = runner.invoke(main, ["rank", str(tmp_path / "test.jsonl"), *where, "--model", str(model_dir),
                                 "--runtime", runtime, "--precision", "fp32", "--threads", "2", "--top-n", "5",
                                 "--out", str(out), "--no-carbon"])
        assert r.exit_code == 0, r.output
        preds[runtime] = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(preds["onnx"]) == 6
    same = [{k["phrase"] for k in a["keyphrases"]} == {k["phrase"] for k in b["keyphrases"]}
            for a, b in zip(preds["torch"], preds["onnx"])]
    assert sum(same) >= 4, same


@pytest.mark.parametrize("runtime,module,extra", [("onnx", "onnxruntime", "onnx"),
                                                  ("openvino", "openvino", "openvino")])
def test_missing_package_is_one_line_error(runtime, module, extra, tmp_path):
    code = (f"import sys; sys.modules[{module!r}] = None\n"
            "from esrank.commands import main\n"
            f"main(['export-model', '--runtime', {runtime!r}, '--out', {str(tmp_path)!r}])\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "ESRANK_PROGRESS": "0"})
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("esrank: error: ") and f'pip install "esrank[{extra}]"' in lines[0]


def test_max_doc_tokens_uses_the_same_export(onnx_encoder, model_dir):
    """--max-doc-tokens cuts the documents, not the exported graph: the export made at the model's length is used."""
    stamps = {p.name: p.stat().st_mtime_ns for p in (model_dir / "onnx").iterdir()}
    cut = Encoder.load(str(model_dir), device="cpu", precision="fp32", threads=2, runtime="onnx",
                       max_seq_length=128)
    assert cut.runtime == onnx_encoder.runtime and cut.model.max_seq_length == 128
    assert {p.name: p.stat().st_mtime_ns for p in (model_dir / "onnx").iterdir()} == stamps
    long_text = " ".join(["keyphrase ranking with retrieval"] * 100)
    assert cut.encode_documents([long_text]).shape == (1, 384)
