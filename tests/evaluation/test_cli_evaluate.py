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
    assert [round(row[f"percent_{c}"], 1) for c in "PRMU"] == [44.4, 11.1, 22.2, 22.2]
    # tokens: doc A 3 + 5 = 8 words, doc B 5 + 6 = 11 -> mean 9.5, sd 1.5
    assert (row["tokens_per_doc"], row["tokens_per_doc_sd"]) == (9.5, 1.5)  # numbers, not "9.5 ± 1.5"
    r = CliRunner().invoke(main, ["stats", str(gold)])
    assert "9.5 ± 1.5" in r.stdout  # the table keeps the ± form


def test_help_lists_commands():
    r = CliRunner().invoke(main, ["--help"])
    assert r.exit_code == 0 and "evaluate" in r.output and "stats" in r.output


def test_rounds_must_be_at_least_one(tmp_path):
    """Issue 14 item 9: --rounds -5 gave p = -0.25 and marked identical systems significant."""
    gold, pred = _files(tmp_path)
    r = CliRunner().invoke(main, ["evaluate", "--gold", str(gold), "--pred", str(pred), "--pred", str(pred),
                                  "--rounds", "-5"])
    assert r.exit_code == 2 and "--rounds" in r.stderr and "†" not in r.stdout


def test_gold_without_keyphrases_is_an_error_and_partial_gold_a_warning(tmp_path):
    """Issue 14 item 9: a gold file without keyphrases gave an empty table and exit 0."""
    _, pred = _files(tmp_path)
    gold = tmp_path / "nokp.jsonl"
    gold.write_text('{"id": "A", "title": "Alpha beta"}\n{"id": "B", "title": "Neural networks"}\n')
    r = CliRunner().invoke(main, ["evaluate", "--gold", str(gold), "--pred", str(pred)])
    assert r.exit_code == 2
    assert r.stderr.strip().startswith(f"esrank: error: {gold}: no gold document has keyphrases")
    gold.write_text('{"id": "A", "title": "Alpha beta", "keyphrases": ["alpha beta"]}\n'
                    '{"id": "B", "title": "Neural networks"}\n')
    r = CliRunner().invoke(main, ["evaluate", "--gold", str(gold), "--pred", str(pred)])
    assert r.exit_code == 0 and "1 of 2 gold documents have no keyphrases" in r.stderr


def test_duplicate_prediction_ids_are_warned(tmp_path):
    """Issue 14 item 11: with duplicate ids in a predictions file the last silently won."""
    gold, pred = _files(tmp_path)
    with open(pred, "a") as fh:
        fh.write('{"id": "A", "keyphrases": ["alpha beta"]}\n')
    r = CliRunner().invoke(main, ["evaluate", "--gold", str(gold), "--pred", str(pred), "--format", "json"])
    assert r.exit_code == 0
    assert "1 duplicate ids (e.g. 'A'); the last line of each id is used" in r.stderr


def test_stats_and_evaluate_read_stdin(tmp_path):
    """Issue 14 item 10: `cat f.jsonl | esrank stats -` gave a FileNotFoundError traceback."""
    gold, pred = _files(tmp_path)
    r = CliRunner().invoke(main, ["stats", "-", "--format", "json"], input=gold.read_bytes())
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)[0]["documents"] == 2 and "stdin: read 2, kept 2" in r.stderr
    r = CliRunner().invoke(main, ["stats", "-"], input=b"")
    assert r.exit_code == 0 and "esrank: warning: stdin: the input holds no documents" in r.stderr
    r = CliRunner().invoke(main, ["evaluate", "--gold", "-", "--pred", str(pred), "--format", "json"],
                           input=gold.read_bytes())
    assert r.exit_code == 0, r.output


def test_plot_over_an_input_is_refused(tmp_path):
    gold, pred = _files(tmp_path)
    before = pred.read_bytes()
    r = CliRunner().invoke(main, ["evaluate", "--gold", str(gold), "--pred", str(pred), "--plot", str(pred)])
    assert r.exit_code == 2 and "same file as the input" in r.stderr and pred.read_bytes() == before


def test_empty_keyphrase_separator_is_one_error_line(tmp_path):
    """Issue 14 item 10: --keyphrase-sep "" gave a traceback."""
    csv = tmp_path / "d.csv"
    csv.write_text("id,title,keyphrases\n1,t,a;b\n")
    r = CliRunner().invoke(main, ["stats", str(csv), "--keyphrase-sep", ""])
    assert r.exit_code == 2 and r.stderr.strip() == (
        "esrank: error: --keyphrase-sep must not be empty (it splits the keyphrases of a CSV/TSV cell)")


def test_quiet_and_debug_after_the_subcommand(tmp_path):
    gold, _ = _files(tmp_path)
    r = CliRunner().invoke(main, ["stats", str(gold), "-q"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["stats", str(tmp_path / "missing.jsonl"), "--debug"])
    assert r.exit_code != 0 and r.exception is not None  # --debug: the error is raised, not turned into a line
    r = CliRunner().invoke(main, ["stats", "--help"])
    assert "ESRANK_ON_ERROR" in r.output
