"""train → rank → evaluate through the CLI, on the embedded index and on a real Elasticsearch node."""
import json

import pytest
from click.testing import CliRunner

from esrank.commands import main
from esrank.corpus import read_documents, sample_corpus_path, write_documents
from esrank.demo import split_corpus


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    out = tmp_path_factory.mktemp("split")
    train, test = split_corpus(list(read_documents(sample_corpus_path())))
    write_documents(train, out / "train.jsonl")
    write_documents(test[:6], out / "test.jsonl")
    write_documents(train[:12], out / "train_small.jsonl")
    return out


@pytest.fixture(scope="module")
def tiny_model(split):
    """A model fine-tuned for one short epoch through `esrank train` on an embedded index of its training documents;
    2 of the 12 are held out to fit the mix weight."""
    out = split / "model"
    where = ["--index", "kp", "--path", str(split / "idx-train")]
    r = CliRunner().invoke(main, ["load", str(split / "train_small.jsonl"), *where])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, [
        "train", *where, "--data", str(split / "train_small.jsonl"),
        "--out", str(out), "--batch-size", "8", "--mini-batch-size", "8", "--max-seq-length", "32",
        "--epochs", "1", "--threads", "1", "--no-carbon"])
    assert r.exit_code == 0, r.output
    assert (out / "esrank_card.json").is_file() and (out / "modules.json").is_file()
    card = json.loads((out / "esrank_card.json").read_text())
    assert card["loss"]["name"] == "masked-mnr" and card["hyper_parameters"]["loss"] == "masked-mnr"
    # training really ran and changed the model: optimiser steps with a finite loss, weights moved from the base
    assert card["training"]["steps"] >= 1 and 0 < card["training"]["final_loss"] < 100
    from esrank.ranking.encoder import Encoder

    base = Encoder.load(None, device="cpu", precision="fp32").model.state_dict()
    tuned = Encoder.load(str(out), device="cpu", precision="fp32").model.state_dict()
    assert base.keys() == tuned.keys()
    moved = [k for k in base if base[k].dtype.is_floating_point and not (base[k] == tuned[k]).all()]
    assert len(moved) > len(base) // 2, f"only {len(moved)} of {len(base)} tensors changed"
    mix = card["mix"]
    from esrank.ranking.pipeline import DEFAULT_K

    assert mix["validation_documents"] == 2 and mix["k"] == DEFAULT_K and len(mix["grid"]) == 21
    assert mix["weight"] in [g["weight"] for g in mix["grid"]] and "mix weight" in r.stderr
    assert card["data"]["documents"] == 10  # the validation documents were not fine-tuned on
    return out


@pytest.mark.parametrize("kind", ["embedded", pytest.param("elasticsearch", marks=pytest.mark.server)])
def test_load_train_rank_evaluate(kind, split, tiny_model, request, tmp_path):
    if kind == "embedded":
        where = ["--path", str(tmp_path / "idx")]
    else:
        where = ["--url", request.getfixturevalue("es_server").url]
    index = ["--index", f"pipeline-{kind}"]
    runner = CliRunner()
    r = runner.invoke(main, ["load", str(split / "train.jsonl"), *index, *where, "--overwrite"])
    assert r.exit_code == 0, r.output
    preds = {}
    for method, extra in (("vote", ["--method", "vote"]), ("model", ["--model", str(tiny_model), "--threads", "1"])):
        out = tmp_path / f"{method}.jsonl"
        r = runner.invoke(main, ["rank", str(split / "test.jsonl"), *index, *where, *extra, "--out", str(out),
                                 "--top-n", "7", "--no-carbon"])
        assert r.exit_code == 0, r.output
        lines = [json.loads(x) for x in out.read_text().splitlines()]
        assert [x["id"] for x in lines] == [d.id for d in read_documents(split / "test.jsonl")]
        for x in lines:
            assert 1 <= len(x["keyphrases"]) <= 7
            scores = [k["score"] for k in x["keyphrases"]]
            assert scores == sorted(scores, reverse=True)
            assert all(k["category"] in ("P", "R", "M", "U") for k in x["keyphrases"])
        preds[method] = out
    r = runner.invoke(main, ["evaluate", "--gold", str(split / "test.jsonl"), "--pred", str(preds["vote"]),
                             "--pred", str(preds["model"]), "--format", "json", "--rounds", "200"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)["results"]
    absent = {x["system"]: x for x in rows if x["metric"] == "Abs_R@Q" and x["group"] == "all"}
    assert set(absent) == {"vote", "model"} and all(x["n"] >= 1 for x in absent.values())
    # the neighbours' keyphrases do contain some absent gold keyphrases of the held-out documents
    assert max(x["value"] for x in absent.values()) > 0


def test_rank_errors_are_one_line(split, tmp_path):
    r = CliRunner().invoke(main, ["rank", str(split / "test.jsonl"), "--index", "nope", "--path",
                                  str(tmp_path / "missing"), "--method", "vote"])
    assert r.exit_code != 0 and r.stderr.startswith("esrank: error: ") and "Traceback" not in r.output
    r = CliRunner().invoke(main, ["rank", str(split / "test.jsonl"), "--index", "x", "--path", str(tmp_path),
                                  "--candidates", "everything"])
    assert r.exit_code == 2 and "--candidates takes" in r.stderr


def test_loss_choices_match_the_library():
    from esrank.commands.ranking import LOSS_CHOICES
    from esrank.ranking.losses import LOSS_NAMES

    assert tuple(LOSS_CHOICES) == tuple(LOSS_NAMES)


def test_encode_keyphrases_fills_the_disk_cache(split, tmp_path):
    runner = CliRunner()
    where = ["--index", "enc", "--path", str(tmp_path / "idx")]
    assert runner.invoke(main, ["load", str(split / "train_small.jsonl"), *where]).exit_code == 0
    cache = tmp_path / "cache"
    r = runner.invoke(main, ["encode-keyphrases", *where, "--cache-dir", str(cache), "--threads", "1"])
    assert r.exit_code == 0, r.output
    n_phrases = len({p for d in read_documents(split / "train_small.jsonl") for p in d.keyphrases})
    assert f"{n_phrases} distinct keyphrases" in r.stderr and f"{n_phrases} encoded" in r.stderr
    r = runner.invoke(main, ["encode-keyphrases", *where, "--cache-dir", str(cache), "--threads", "1"])
    assert f"0 encoded, {n_phrases} already cached" in r.stderr


def test_rank_writes_every_candidate_and_mixes(split, tiny_model, tmp_path):
    """No --top-n: each document's whole pool, ranked; --method mix with the card's mix model, with an explicit
    linear weight, and with the default weight (and one note) for a model without a fit; the real MiniLM from its
    package."""
    from esrank.ranking.mix import read_fit
    from esrank.ranking.pipeline import RankSettings, candidate_pools
    from esrank.ranking.ranker import Ranker
    from esrank.retrieval.embedded import EmbeddedBackend

    runner = CliRunner()
    where = ["--index", "full", "--path", str(tmp_path / "idx")]
    assert runner.invoke(main, ["load", str(split / "train.jsonl"), *where]).exit_code == 0
    pools = tmp_path / "pools.jsonl"
    r = runner.invoke(main, ["neighbours", str(split / "test.jsonl"), *where, "-k", "5", "--out", str(pools)])
    assert r.exit_code == 0, r.output
    pool_phrases = {x["id"]: {c["phrase"] for c in x["candidates"]}
                    for x in map(json.loads, pools.read_text().splitlines())}
    fit = read_fit(tiny_model)
    assert fit is not None and fit.model is not None  # esrank train fitted the mix model
    weight = fit.weight
    written = {}
    for name, extra in (("vote", ["--method", "vote"]), ("mix", ["--method", "mix", "--model", str(tiny_model)]),
                        ("linear-mix", ["--method", "mix", "--model", str(tiny_model), "--mix-weight", str(weight)]),
                        ("zero-shot-mix", ["--method", "mix"]), ("model", ["--method", "model", "--model", str(tiny_model)])):
        out = tmp_path / f"{name}.jsonl"
        r = runner.invoke(main, ["rank", str(split / "test.jsonl"), *where, "-k", "5", *extra, "--out", str(out),
                                 "--threads", "1", "--no-carbon"])
        assert r.exit_code == 0, r.output
        written[name] = {x["id"]: x["keyphrases"] for x in map(json.loads, out.read_text().splitlines())}
        for doc_id, kps in written[name].items():
            assert {k["phrase"] for k in kps} == pool_phrases[doc_id]
            scores = [k["score"] for k in kps]
            assert scores == sorted(scores, reverse=True)
        notes = r.stderr.count("has no fitted mix (")
        assert notes == (1 if name == "zero-shot-mix" else 0), r.stderr
        assert ("fitted at k=" in r.stderr) == (name == "mix")  # the card's k (the default) is not -k 5
    assert max(len(v) for v in pool_phrases.values()) > 10  # more than the old default cut of 10
    for doc_id, kps in written["linear-mix"].items():  # linear mix = w·cosine + (1−w)·vote/max(vote), by hand
        cos = {k["phrase"]: k["score"] for k in written["model"][doc_id]}
        vote = {k["phrase"]: k["score"] for k in written["vote"][doc_id]}
        top = max(vote.values())
        for k in kps:
            assert k["score"] == pytest.approx(weight * cos[k["phrase"]] + (1 - weight) * vote[k["phrase"]] / top,
                                               abs=1e-4)
    # the mix model: each candidate's probability from the card's model, over the pool with the index's keyphrase
    # frequencies, recomputed through the library
    docs = list(read_documents(split / "test.jsonl"))
    backend = EmbeddedBackend("full", tmp_path / "idx")
    ranker = Ranker.load(tiny_model, threads=1)
    lib_pools = candidate_pools(backend, docs, RankSettings(k=5, frequencies=True))
    assert all(p.index_documents > 0 for p in lib_pools)
    for doc, pool, cos_list in zip(docs, lib_pools, ranker.cosine_scores(docs, lib_pools)):
        expected = dict(zip(pool.phrases, fit.model.scores(doc, pool, cos_list)))
        got = {k["phrase"]: k["score"] for k in written["mix"][doc.id]}
        assert got == pytest.approx(expected, abs=1e-4) and all(0 < v < 1 for v in got.values())
    backend.close()


def test_train_without_an_index_is_one_line_unless_no_validation(split, tmp_path):
    r = CliRunner().invoke(main, ["train", "--index", "missing", "--path", str(tmp_path / "none"), "--data",
                                  str(split / "train_small.jsonl"), "--out", str(tmp_path / "m"), "--no-carbon"])
    last = r.stderr.strip().splitlines()[-1]
    assert r.exit_code != 0 and last.startswith("esrank: error: ") and "esrank load" in last
    assert "Traceback" not in r.output and not (tmp_path / "m").exists()  # it failed before fine-tuning
    r = CliRunner().invoke(main, ["train", "--index", "missing", "--path", str(tmp_path / "none"), "--data",
                                  str(split / "train_small.jsonl"), "--out", str(tmp_path / "m"), "--no-carbon",
                                  "--validation-share", "0", "--batch-size", "8", "--mini-batch-size", "8",
                                  "--max-seq-length", "16", "--threads", "1"])
    assert r.exit_code == 0, r.output
    card = json.loads((tmp_path / "m" / "esrank_card.json").read_text())
    assert "mix" not in card and card["data"]["documents"] == 12


def test_cli_constants_match_the_library():
    from esrank.commands import ranking as cli
    from esrank.ranking import mix, pipeline

    assert cli.METHOD_CHOICES == pipeline.METHODS
    assert (cli.DEFAULT_K, cli.DEFAULT_METHOD) == (pipeline.DEFAULT_K, pipeline.DEFAULT_METHOD)
    assert cli.DEFAULT_BATCH == pipeline.DEFAULT_BATCH == pipeline.RankSettings().batch_size
    assert cli.VALIDATION_SHARE == mix.VALIDATION_SHARE
