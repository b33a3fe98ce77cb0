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
    """A model fine-tuned for one short epoch through `esrank train` (embedded index)."""
    out = split / "model"
    r = CliRunner().invoke(main, [
        "train", "--index", "kp", "--path", str(split / "idx-train"), "--data", str(split / "train_small.jsonl"),
        "--out", str(out), "--batch-size", "8", "--mini-batch-size", "8", "--max-seq-length", "32",
        "--epochs", "1", "--threads", "1", "--no-carbon"])
    assert r.exit_code == 0, r.output
    assert (out / "esrank_card.json").is_file() and (out / "modules.json").is_file()
    card = json.loads((out / "esrank_card.json").read_text())
    assert card["loss"] == "masked-mnr" or card.get("hyper_parameters", {}).get("loss") == "masked-mnr"
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
