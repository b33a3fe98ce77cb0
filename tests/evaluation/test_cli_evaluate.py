import json

from click.testing import CliRunner

from esrank.commands import main


def _files(tmp_path):
    gold = tmp_path / "gold.jsonl"
    gold.write_text("\n".join(json.dumps(r) for r in [
        {"id": "A", "title": "Alpha beta gamma", "abstract": "Delta epsilon. Zeta eta theta.",
         "keyphrases": ["alpha beta", "delta epsilon", "gamma alpha", "zeta omega", "omega psi", "kappa"]},
        {"id": "B", "title": "Neural networks for image segmentation", "abstract": "We train a network on images.",
         "keyphrases": ["neural network", "image segmentation", "convolutional networks"]},
    ]) + "\n")
    pred = tmp_path / "sys.jsonl"
    pred.write_text("\n".join(json.dumps(r) for r in [
        {"id": "A", "keyphrases": [{"phrase": "alpha beta", "score": 0.9}, "beta gamma", "omega psi", "theta",
                                   "delta epsilon", "gamma alpha", "lambda", "kappa"]},
        {"id": "B", "keyphrases": ["neural networks", "images", "image segmentation", "convolutional network"]},
    ]) + "\n")
    return gold, pred


def test_evaluate_json_matches_hand_values(tmp_path):
    gold, pred = _files(tmp_path)
    r = CliRunner().invoke(main, ["evaluate", "--gold", str(gold), "--pred", str(pred), "--format", "json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    vals = {(x["system"], x["metric"]): (x["value"], x["n"]) for x in data["results"] if x["group"] == "all"}
    assert vals[("sys", "P_F1@Q")] == (0.5, 2)
    assert vals[("sys", "Abs_R@Q")] == (0.875, 2)


def test_evaluate_two_systems_table_plot_and_markdown(tmp_path):
    gold, pred = _files(tmp_path)
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"id": "A", "keyphrases": []}\n{"id": "B", "keyphrases": []}\n')
    png = tmp_path / "p.png"
    r = CliRunner().invoke(main, ["evaluate", "--gold", str(gold), "--pred", str(empty), "--pred", str(pred),
                                  "--plot", str(png), "--rounds", "200"])
    assert r.exit_code == 0, r.output
    assert "P F1@Q" in r.stdout and "n (documents)" in r.stdout and "p (randomization)" in r.stdout
    assert png.stat().st_size > 1000
    r = CliRunner().invoke(main, ["evaluate", "--gold", str(gold), "--pred", str(pred), "--format", "markdown"])
    assert "| system |" in r.stdout


def test_bad_prediction_file_is_one_clear_line(tmp_path):
    gold, _ = _files(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "A", "keyphrases": ["x"]}\n{"id": "B", "keyphrases": "x"}\n')
    r = CliRunner().invoke(main, ["evaluate", "--gold", str(gold), "--pred", str(bad)])
    assert r.exit_code == 2
    assert r.stderr.strip() == f"esrank: error: {bad}:2: 'keyphrases' must be a list"


def test_bad_gold_fails_then_skips_with_rejects(tmp_path):
    gold, pred = _files(tmp_path)
    with open(gold, "a") as fh:
        fh.write("{oops\n")
    r = CliRunner().invoke(main, ["evaluate", "--gold", str(gold), "--pred", str(pred)])
    assert r.exit_code == 2 and f"{gold}:3: malformed JSON" in r.stderr and "Traceback" not in r.output
    rej = tmp_path / "rej.jsonl"
    r = CliRunner().invoke(main, ["evaluate", "--gold", str(gold), "--pred", str(pred), "--on-error", "skip",
                                  "--rejects", str(rej)])
    assert r.exit_code == 0 and "read 3, kept 2, skipped 1" in r.stderr
    assert json.loads(rej.read_text())["line"] == 3


def test_stats_on_hand_corpus(tmp_path):
    gold, _ = _files(tmp_path)
    r = CliRunner().invoke(main, ["stats", str(gold), "--format", "json"])
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)[0]
    assert row["documents"] == 2
    # 9 gold keyphrases: P = alpha beta, delta epsilon, neural network, image segmentation (4);
    # R = gamma alpha; M = zeta omega, convolutional networks; U = omega psi, kappa
    assert (row["%P"], row["%R"], row["%M"], row["%U"]) == (44.4, 11.1, 22.2, 22.2)
    # tokens: doc A 3 + 5 = 8 words, doc B 5 + 6 = 11 -> mean 9.5, sd 1.5
    assert row["tokens/doc"] == "9.5 ± 1.5"


def test_help_lists_commands():
    r = CliRunner().invoke(main, ["--help"])
    assert r.exit_code == 0 and "evaluate" in r.output and "stats" in r.output
