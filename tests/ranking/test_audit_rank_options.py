"""`esrank rank` options end to end on an embedded index of the sample corpus (issue 18): --candidates
neighbours,vocabulary --thesaurus, --max-doc-tokens, --precision fp32|bf16, --carbon-mode machine, and
`encode-keyphrases` / `rank --disk-cache` after the model in a directory was replaced."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from esrank.commands import main
from esrank.corpus import read_documents, sample_corpus_path, write_documents
from esrank.demo import split_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An embedded index of the sample training split and four held-out documents to rank."""
    out = tmp_path_factory.mktemp("rank-options")
    train, test = split_corpus(list(read_documents(sample_corpus_path())))
    write_documents(train, out / "train.jsonl")
    write_documents(test[:4], out / "test.jsonl")
    r = CliRunner().invoke(main, ["-q", "load", str(out / "train.jsonl"), "--index", "kp", "--path", str(out / "ix")])
    assert r.exit_code == 0, r.output
    return out


def _rank(corpus: Path, tmp_path: Path, name: str, *extra: str) -> dict[str, dict[str, Any]]:
    """{doc id: {phrase: keyphrase record}} of one `esrank rank` run (scores: the cosine, `--method model`)."""
    out = tmp_path / f"{name}.jsonl"
    r = CliRunner().invoke(main, ["-q", "rank", str(corpus / "test.jsonl"), "--index", "kp", "--path",
                                  str(corpus / "ix"), "--threads", "1", "--out", str(out), "--method", "model",
                                  *extra])
    assert r.exit_code == 0, r.output
    return {x["id"]: {k["phrase"]: k for k in x["keyphrases"]} for x in map(json.loads, out.read_text().splitlines())}


def _scores(run: dict[str, dict[str, Any]]) -> dict[tuple[str, str], float]:
    return {(doc, p): k["score"] for doc, kps in run.items() for p, k in kps.items()}


@pytest.fixture(scope="module")
def fp32(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    return _rank(corpus, tmp_path_factory.mktemp("fp32"), "fp32", "--precision", "fp32", "--no-carbon")


def test_vocabulary_candidates_join_the_pool(corpus: Path, fp32: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    thesaurus = tmp_path / "thesaurus.json"
    thesaurus.write_text(json.dumps({"name": "test", "language": "en", "descriptors": [
        {"id": "D1", "label": "Dwell Time"},  # in cs-001's abstract
        {"id": "D2", "label": "Base Station", "synonyms": ["base stations"]},  # in cs-006's abstract
        {"id": "D3", "label": "Zebra Migration"},  # in no document
    ]}), encoding="utf-8")
    assert {"cs-001", "cs-006"} <= set(fp32)
    assert not any(p.lower() in ("dwell time", "base station", "zebra migration") for kps in fp32.values() for p in kps)
    run = _rank(corpus, tmp_path, "vocab", "--precision", "fp32", "--no-carbon",
                "--candidates", "neighbours,vocabulary", "--thesaurus", str(thesaurus))
    added = {(doc, p) for doc, kps in run.items() for p in kps if (doc, p) not in _scores(fp32)}
    assert added == {("cs-001", "Dwell Time"), ("cs-006", "Base Station")}
    for doc, kps in fp32.items():  # the neighbours' candidates are all still there, with the same scores (written
        for p, k in kps.items():      # to 6 decimals; the extra phrases change the encoding batches' float noise)
            assert run[doc][p]["score"] == pytest.approx(k["score"], abs=1e-5)
    dwell = run["cs-001"]["Dwell Time"]
    assert 0 < dwell["score"] <= 1 and dwell["category"] == "P"  # scored by the model like any candidate
    r = CliRunner().invoke(main, ["-q", "rank", str(corpus / "test.jsonl"), "--index", "kp", "--path",
                                  str(corpus / "ix"), "--candidates", "neighbours,vocabulary"])
    assert r.exit_code != 0 and r.stderr.strip().startswith("esrank: error: ") and "--thesaurus" in r.stderr


def test_max_doc_tokens_truncates_what_is_encoded(corpus: Path, fp32: dict[str, dict[str, Any]],
                                                  tmp_path: Path) -> None:
    from esrank.ranking.encoder import Encoder

    short = _rank(corpus, tmp_path, "short", "--precision", "fp32", "--no-carbon", "--max-doc-tokens", "16")
    assert {d: set(k) for d, k in short.items()} == {d: set(k) for d, k in fp32.items()}  # same pools
    # the cosine of the first 16 word pieces of each document, by hand through the model
    enc = Encoder.load(None, device="cpu", precision="fp32", max_seq_length=16)
    docs = list(read_documents(corpus / "test.jsonl"))
    for doc in docs:
        phrases = sorted(short[doc.id])
        d16 = enc.model.encode([doc.full_text], normalize_embeddings=True)[0]
        p = enc.model.encode(phrases, normalize_embeddings=True)
        for phrase, cos in zip(phrases, p @ d16):
            assert short[doc.id][phrase]["score"] == pytest.approx(float(cos), abs=1e-4)
    assert max(abs(short[d][p]["score"] - fp32[d][p]["score"]) for d in fp32 for p in fp32[d]) > 0.01


def test_bf16_precision_changes_the_arithmetic_not_the_ranking(corpus: Path, fp32: dict[str, dict[str, Any]],
                                                               tmp_path: Path) -> None:
    bf16 = _rank(corpus, tmp_path, "bf16", "--precision", "bf16", "--no-carbon")
    a, b = _scores(fp32), _scores(bf16)
    assert set(a) == set(b)
    diffs = [abs(a[k] - b[k]) for k in a]
    assert max(diffs) < 0.05  # bf16 keeps about 3 significant digits
    assert max(diffs) > 1e-5  # ... and really ran in bf16: fp32 would give the same scores to 1e-6
    r = CliRunner().invoke(main, ["-q", "rank", str(corpus / "test.jsonl"), "--index", "kp", "--path",
                                  str(corpus / "ix"), "--precision", "fp16", "--device", "cpu", "--no-carbon"])
    assert r.exit_code != 0 and "esrank: error: " in r.stderr and "fp16 is for GPUs" in r.stderr


def test_carbon_mode_machine_reaches_codecarbon(corpus: Path, fp32: dict[str, dict[str, Any]], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    codecarbon = pytest.importorskip("codecarbon")
    modes: list[str] = []
    real = codecarbon.OfflineEmissionsTracker

    class Recording(real):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kw: Any) -> None:
            modes.append(kw.get("tracking_mode", "machine"))
            super().__init__(*args, **kw)

    monkeypatch.setattr(codecarbon, "OfflineEmissionsTracker", Recording)
    cost = tmp_path / "cost"
    run = _rank(corpus, tmp_path, "machine", "--precision", "fp32", "--carbon-mode", "machine",
                "--cost-log", str(cost))
    assert _scores(run) == pytest.approx(_scores(fp32), abs=1e-6)
    assert modes and set(modes) == {"machine"}
    records = [json.loads(x) for x in (cost / "cost.jsonl").read_text().splitlines()]
    assert records and all(r["kwh"] is not None and r["kwh"] >= 0 for r in records)
    modes.clear()
    _rank(corpus, tmp_path, "process", "--precision", "fp32", "--cost-log", str(cost))
    assert modes and set(modes) == {"process"}  # the default


def test_encode_keyphrases_after_the_model_changed(corpus: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A model directory retrained in place: the disk cache must not serve the old model's embeddings."""
    import torch

    from esrank.ranking.encoder import Encoder

    model_dir, cache = tmp_path / "model", tmp_path / "cache"
    base = Encoder.load(None, device="cpu", precision="fp32").model
    base.save(str(model_dir))
    where = ["--index", "kp", "--path", str(corpus / "ix"), "--cache-dir", str(cache), "--threads", "1",
             "--precision", "fp32", "--model", str(model_dir)]
    r = CliRunner().invoke(main, ["encode-keyphrases", *where])
    assert r.exit_code == 0, r.output
    n = len({p for d in read_documents(corpus / "train.jsonl") for p in d.keyphrases})
    assert f"{n} encoded" in r.stderr
    with torch.no_grad():  # "retrain": the same architecture with other weights, saved over the old model
        for name, param in base.named_parameters():
            if "encoder.layer.5" in name and param.dim() == 2:
                param.mul_(-1.0)
    base.save(str(model_dir))
    r = CliRunner().invoke(main, ["encode-keyphrases", *where])
    assert r.exit_code == 0, r.output
    assert f"{n} encoded, 0 already cached" in r.stderr
    plain = _rank(corpus, tmp_path, "plain", "--model", str(model_dir), "--precision", "fp32", "--no-carbon")
    monkeypatch.setenv("ESRANK_CACHE_DIR", str(cache))
    cached = _rank(corpus, tmp_path, "cached", "--model", str(model_dir), "--precision", "fp32", "--no-carbon",
                   "--disk-cache")
    assert _scores(cached) == pytest.approx(_scores(plain), abs=1e-5)
