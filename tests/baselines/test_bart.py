"""BART-KP One2Seq baseline: target formatting and parsing, training, generation and the CLI, with a tiny
randomly initialised BART and a BPE tokenizer built from the sample texts (nothing is downloaded)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"

import torch  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from bart_tiny import build_tiny_bart  # noqa: E402
from esrank.baselines.bart import (KEYPHRASE_SEP, BartGenerator, BartPredictConfig, BartTrainConfig, Beam,  # noqa: E402
                                   document_target, format_source, format_target, load_tokenizer, merge_beams,
                                   order_keyphrases, predict_bart, split_ids, split_target, train_bart)
from esrank.baselines.bart.model import BartMeta, add_keyphrase_sep, resolve_model  # noqa: E402
from esrank.commands import main  # noqa: E402
from esrank.corpus import Document, read_documents, sample_corpus_path, write_documents  # noqa: E402
from esrank.errors import ConfigError, InputError  # noqa: E402
from esrank.predictions import PredictionWriter, read_predictions  # noqa: E402
from esrank.text import stemmed_key  # noqa: E402

torch.set_num_threads(1)

DOC = Document(
    "d1", "Neural networks for image segmentation",
    "We train a convolutional network on medical images. Image segmentation quality improves.",
    ["image segmentation", "medical images", "deep learning", "neural network", "convolutional networks",
     "neural networks", "-", "transfer learning"],
)


def _sample_docs(n: int) -> list[Document]:
    path = sample_corpus_path()
    if path.is_file():
        return list(read_documents(path))[:n]
    return [DOC]  # pragma: no cover - the sample corpus ships with the package


# ---- formats -------------------------------------------------------------------------------------------------

def test_present_keyphrases_in_order_of_first_appearance_then_absent_in_original_order():
    ordered = order_keyphrases(DOC)
    assert ordered.present == ["neural network", "image segmentation", "convolutional networks", "medical images"]
    assert ordered.absent == ["deep learning", "transfer learning"]  # "neural networks" (same stems) and "-" dropped
    assert document_target(DOC) == (
        "neural network<kp_sep>image segmentation<kp_sep>convolutional networks<kp_sep>medical images"
        "<kp_sep>deep learning<kp_sep>transfer learning")


def test_source_uses_the_separator_and_tolerates_a_missing_part():
    assert format_source(" Title ", "Text body.", "<s>") == "Title<s>Text body."
    assert format_source("", "Text body.", "<s>") == "Text body."
    assert format_source("Title", "  ", "<s>") == "Title"


def test_source_is_title_bos_abstract_as_in_the_paper(tiny_model):
    """The paper's source is `title <s> abstract`: one bos token between title and text, not `</s>`."""
    from esrank.baselines.bart.train import encode_documents

    tok = load_tokenizer(str(tiny_model))
    add_keyphrase_sep(tok, None)
    ids = encode_documents([DOC], tok, 256, 64).features[0]["input_ids"]
    # RoBERTa-style framing <s> ... </s>, and inside it exactly one more <s>: the title/text separator
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
    inner = ids[1:-1]
    assert inner.count(tok.bos_token_id) == 1 and tok.eos_token_id not in inner
    cut = inner.index(tok.bos_token_id)
    assert tok.decode(inner[:cut]) == DOC.title and tok.decode(inner[cut + 1:]) == DOC.text


def test_split_target_inverts_format_target():
    phrases = ["neural  network", " image segmentation", "", "café au lait"]
    assert split_target(format_target(phrases)) == ["neural network", "image segmentation", "café au lait"]
    assert split_ids([0, 5, 6, 9, 7, 9, 9, 8, 2, 1, 1], sep_id=9, drop_ids={0, 1, 2}) == [[5, 6], [7], [8]]


def test_merge_beams_dedupes_by_stem_in_beam_order_with_prmu():
    beams = [Beam(["neural networks", "image segmentation"], -0.5),
             Beam(["Neural network", "deep  learning", ""], -0.7),
             Beam(["image segmentations", "quality", "deep network", "segmentation image"], -0.9)]
    pred = merge_beams(DOC, beams)
    assert pred.id == "d1"
    assert [(k.phrase, k.category) for k in pred.keyphrases] == [
        ("neural networks", "P"), ("image segmentation", "P"), ("deep learning", "U"), ("quality", "P"),
        ("deep network", "M"), ("segmentation image", "R")]
    assert [k.score for k in pred.keyphrases] == pytest.approx([1, 1 / 2, 1 / 3, 1 / 4, 1 / 5, 1 / 6])
    assert pred.meta == {"beam_score": -0.5}


# ---- tiny model ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    docs = _sample_docs(90) + [DOC]
    texts = [f"{d.title} {d.text} {' '.join(d.keyphrases)}" for d in docs]
    return build_tiny_bart(tmp_path_factory.mktemp("tiny") / "bart", texts)


def test_target_round_trip_through_the_tokenizer(tiny_model):
    tok = load_tokenizer(str(tiny_model))
    sep_id = add_keyphrase_sep(tok, None)
    assert tok.convert_ids_to_tokens(sep_id) == KEYPHRASE_SEP
    phrases = order_keyphrases(DOC).all
    ids = tok(text_target=format_target(phrases))["input_ids"]
    assert ids.count(sep_id) == len(phrases) - 1  # the separator is one token, never split
    drop = {i for i in tok.all_special_ids if i != sep_id}
    assert [tok.decode(c, skip_special_tokens=True) for c in split_ids(ids, sep_id, drop)] == phrases


@pytest.fixture(scope="module")
def trained(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("trained") / "model"
    docs = _sample_docs(12)
    config = BartTrainConfig(out=str(out), model=str(tiny_model), max_steps=12, lr=3e-3, batch_size=4, grad_accum=1,
                             max_source_length=64, max_target_length=32, logging_steps=1, seed=1, device="cpu")
    return train_bart(docs, config), config, docs


def test_training_lowers_the_loss_and_saves_a_loadable_model(trained):
    result, config, docs = trained
    assert result.steps == 12 and result.train_docs == len(docs) and result.skipped == 0
    assert len(result.losses) == 12
    assert sum(result.losses[-3:]) / 3 < sum(result.losses[:3]) / 3 - 0.3
    out = Path(config.out)
    assert (out / "model.safetensors").is_file() and not (out / "pytorch_model.bin").exists()
    assert BartMeta.load(out) == BartMeta(KEYPHRASE_SEP, 64, 32, config.model, "<s>")
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-12", "checkpoint-9"]


def test_resume_continues_from_the_last_checkpoint(trained, tmp_path):
    result, config, docs = trained
    import shutil

    out = tmp_path / "resumed"
    shutil.copytree(Path(config.out) / "checkpoints", out / "checkpoints")
    cfg = BartTrainConfig(**{**config.__dict__, "out": str(out), "resume": True, "max_steps": 15})
    again = train_bart(docs, cfg)
    assert again.resumed_from is not None and again.resumed_from.endswith("checkpoint-12")
    assert again.steps == 15 and len(again.losses) == 15  # the log history comes back with the checkpoint
    assert again.losses[:12] == pytest.approx(result.losses)
    # the weights came back too: the new steps continue from the trained loss, not from the initial one
    assert max(again.losses[12:]) < result.losses[0] - 0.3
    with pytest.raises(ConfigError, match="no checkpoint"):
        train_bart(docs, BartTrainConfig(**{**config.__dict__, "out": str(tmp_path / "fresh"), "resume": True}))


def test_predict_writes_a_valid_line_for_every_document(trained, tmp_path):
    result, config, docs = trained
    empty = Document("empty", "", "")
    long = Document("long", "A very long document", " ".join(["neural networks segment medical images"] * 1500))
    inputs = [docs[0], empty, long, docs[1], DOC]
    pcfg = BartPredictConfig(model=config.out, num_beams=4, num_return_sequences=3, batch_size=2,
                             max_target_length=12, device="cpu")
    path = tmp_path / "preds.jsonl"
    with PredictionWriter(path) as writer:
        stats = predict_bart(inputs, pcfg, writer)
    assert (stats.documents, stats.empty_inputs) == (5, 1)
    preds = list(read_predictions(path))
    assert [p.id for p in preds] == [d.id for d in inputs]
    assert preds[1].keyphrases == []
    for p in preds:
        keys = [stemmed_key(k.phrase) for k in p.keyphrases]
        assert len(keys) == len(set(keys)) and all(keys)
        assert [k.score for k in p.keyphrases] == pytest.approx([1 / (i + 1) for i in range(len(keys))])
        assert all(k.category in {"P", "R", "M", "U"} for k in p.keyphrases)
    assert sum(len(p.keyphrases) for p in preds) > 0


def test_generator_joins_title_and_text_the_way_the_model_was_trained(trained, tmp_path):
    import shutil

    _, config, _ = trained
    assert BartGenerator(BartPredictConfig(model=config.out, device="cpu")).src_sep == "<s>"
    legacy = tmp_path / "legacy"
    shutil.copytree(config.out, legacy, ignore=shutil.ignore_patterns("checkpoints"))
    meta = json.loads((legacy / "esrank_bart.json").read_text())
    del meta["source_sep"]  # written before the separator was recorded: those models were trained with </s>
    (legacy / "esrank_bart.json").write_text(json.dumps(meta))
    assert BartGenerator(BartPredictConfig(model=str(legacy), device="cpu")).src_sep == "</s>"


def test_training_defaults_are_the_papers():
    cfg = BartTrainConfig(out="x")
    assert (cfg.epochs, cfg.lr, cfg.batch_size * cfg.grad_accum) == (10.0, 5e-5, 168)


def test_generator_rejects_bad_options_and_models_without_separator(trained, tiny_model):
    _, config, _ = trained
    with pytest.raises(ConfigError, match="num-return-sequences"):
        BartGenerator(BartPredictConfig(model=config.out, num_beams=2, num_return_sequences=3))
    with pytest.raises(ConfigError, match="separator"):
        BartGenerator(BartPredictConfig(model=str(tiny_model), device="cpu"))


def test_model_resolution_errors(tmp_path):
    with pytest.raises(InputError, match="no such model directory"):
        resolve_model(str(tmp_path / "missing" / "model"))
    assert resolve_model("facebook/bart-base") == ("facebook/bart-base", False)
    with pytest.raises(ConfigError, match="offline"):
        load_tokenizer("esrank-test/no-such-model")


# ---- CLI -----------------------------------------------------------------------------------------------------

def test_cli_train_predict_evaluate(tiny_model, tmp_path):
    data = tmp_path / "train.jsonl"
    write_documents(_sample_docs(6), data)
    out, preds, cost = tmp_path / "bart", tmp_path / "bart.jsonl", tmp_path / "cost"
    runner = CliRunner()
    r = runner.invoke(main, ["-q", "bart", "train", str(data), "--out", str(out), "--model",
                             str(tiny_model), "--max-steps", "2", "--batch-size", "3", "--max-source-length", "48",
                             "--max-target-length", "24", "--dev", str(data), "--cost-log", str(cost), "--no-carbon",
                             "--quick"])
    assert r.exit_code == 0, r.output
    assert "trained on 6 documents" in r.stderr and "dev loss" in r.stderr and r.stdout == ""
    assert "3 epochs, lr 5e-05, effective batch 3 (3 × 1 accumulated)" in r.stderr
    r = runner.invoke(main, ["-q", "bart", "predict", "--model", str(out), str(data), "--out", str(preds),
                             "--num-beams", "2", "--num-return-sequences", "2", "--max-target-length", "10",
                             "--cost-log", str(cost), "--no-carbon"])
    assert r.exit_code == 0, r.output
    assert "predicted 6 documents" in r.stderr
    assert f"recorded in {cost / 'cost.jsonl'}" in r.stderr.splitlines()[-1]  # the cost summary line
    assert len(list(read_predictions(preds))) == 6
    stages = [json.loads(line) for line in (cost / "cost.jsonl").read_text().splitlines()]
    assert [(s["stage"], s["approach"], s["items"]) for s in stages] == [
        ("bart_training", "bart", 6), ("bart_inference", "bart", 6)]
    r = runner.invoke(main, ["evaluate", "--gold", str(data), "--pred", str(preds), "--format", "json"])
    assert r.exit_code == 0, r.output
    assert {x["system"] for x in json.loads(r.stdout)["results"]} == {"bart"}


def test_cli_trains_with_the_papers_defaults(tiny_model, tmp_path):
    data = tmp_path / "train.jsonl"
    write_documents(_sample_docs(4), data)
    r = CliRunner().invoke(main, ["-q", "bart", "train", str(data), "--out", str(tmp_path / "m"),
                                  "--model", str(tiny_model), "--max-steps", "1", "--max-source-length", "16",
                                  "--max-target-length", "8", "--no-carbon"])
    assert r.exit_code == 0, r.output
    assert "10 epochs, lr 5e-05, effective batch 168 (8 × 21 accumulated)" in r.stderr
    r = CliRunner().invoke(main, ["-q", "bart", "train", str(data), "--out", str(tmp_path / "m2"),
                                  "--model", str(tiny_model), "--max-steps", "1", "--max-source-length", "16",
                                  "--max-target-length", "8", "--batch-size", "5", "--no-carbon"])
    assert "effective batch 170 (5 × 34 accumulated)" in r.stderr  # 168 rounded up to a multiple of 5


def test_cli_errors_are_one_line(tmp_path):
    data = tmp_path / "d.jsonl"
    write_documents([DOC], data)
    r = CliRunner().invoke(main, ["bart", "predict", "--model", str(tmp_path / "nope"), str(data),
                                  "--out", str(tmp_path / "p.jsonl")])
    assert r.exit_code == 2
    assert r.stderr.strip().splitlines() == [f"esrank: error: {tmp_path / 'nope'}: no such model directory"]
    r = CliRunner().invoke(main, ["bart", "train", str(data), "--out", str(tmp_path / "m"),
                                  "--model", "esrank-test/no-such-model"])
    assert r.exit_code == 2
    last = r.stderr.strip().splitlines()[-1]  # after the read summary of the training data
    assert last.startswith("esrank: error: cannot load model 'esrank-test/no-such-model': not a local directory")
    assert "the hub is offline (HF_HUB_OFFLINE=1)" in last and "Traceback" not in r.stderr
