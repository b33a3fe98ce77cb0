"""The indexing pipeline end to end, collection statistics, the CLI and the evaluation figures."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from esrank.commands import main
from esrank.corpus import Document
from esrank.errors import ConfigError, InputError
from esrank.predictions import read_predictions
from esrank.vocabulary.automaton import Matcher
from esrank.vocabulary.collection import DocumentFrequencies, PairHistory
from esrank.vocabulary.evaluate import evaluate_indexing, read_gold
from esrank.vocabulary.indexer import IndexConfig, Indexer
from esrank.vocabulary.thesaurus import load_thesaurus

DATA = Path(__file__).resolve().parents[1] / "data"
VDATA = DATA / "vocabulary"


@pytest.fixture(scope="module")
def en() -> Matcher:
    return Matcher(load_thesaurus(DATA / "thesaurus_en.json"))


def test_index_document_ranks_headings_with_evidence(en: Matcher) -> None:
    doc = Document("e1", "Insulin treatment of type 1 diabetes",
                   "Type 1 diabetes is treated with insulin. Diabetes affects many patients. Patients were followed.")
    pred = Indexer(en).index(doc)
    heads = pred.keyphrases
    # D2: title 2 + text 1 + the shared parent "Diabetes" 1 = 4 → 4·2.2/(4+1.2); humans (check tag, 2×) gets the same
    # the pair D2/therapy is scored like a descriptor: its frequency 2 (title) + 1 (text) = 3 → 3·2.2/(3+1.2)
    assert [(h.phrase, round(h.score, 6)) for h in heads] == [
        ("Diabetes Mellitus, Type 1", round(4 * 2.2 / 5.2, 6)), ("Humans", round(4 * 2.2 / 5.2, 6)),
        ("Diabetes Mellitus, Type 1/therapy", round(3 * 2.2 / 4.2, 6)),
        ("Insulin", round(3 * 2.2 / 4.2, 6))]
    assert pred.meta == {"cutoff": 3, "rejected_pairs": 2}  # insulin/therapy twice
    assert [h.major for h in heads] == [True, True, True, False]
    d2 = heads[0]
    assert (d2.descriptor_id, d2.qualifier_id) == ("D2", None)
    assert [(e["field"], e["text"], e.get("via")) for e in d2.evidence] == [
        ("title", "type 1 diabetes", None), ("text", "Type 1 diabetes", None), ("text", "Diabetes", "D1")]
    e = d2.evidence[2]
    assert doc.text[e["start"]:e["end"]] == "Diabetes" and e["sentence"] == 2
    assert heads[2].qualifier_id == "Q1" and heads[2].to_json()["qualifier_id"] == "Q1"


def test_document_without_matches_has_no_headings(en: Matcher) -> None:
    pred = Indexer(en).index(Document("x", "Nothing", "about the weather"))
    assert pred.keyphrases == [] and pred.meta["cutoff"] == 0


def test_document_frequencies_from_a_corpus_save_and_load(en: Matcher, tmp_path: Path) -> None:
    from esrank.corpus import read_documents

    df = DocumentFrequencies.from_documents(read_documents(VDATA / "docs_en.jsonl"), en)
    assert df.n_docs == 3 and df.df("D6") == 2 and df.df("D8") == 1 and df.df("D3") == 0
    # title + abstract word tokens: e1 6 + 17, e2 4 + 14, e3 6 + 11 (hyphen-free, punctuation dropped)
    assert df.avg_len == pytest.approx((23 + 18 + 17) / 3)
    # pairs are counted per document as the indexer forms them (allowed ones only)
    assert df.pairs == {("D2", "Q1"): 1, ("D10", "Q3"): 1, ("D8", "Q4"): 1} and df.pair_df("D8", "Q1") == 0
    df.save(tmp_path / "df.json")
    again = DocumentFrequencies.load(tmp_path / "df.json")
    assert again == df
    # a file written before pairs were counted: a pair's df is taken as its descriptor's (an upper bound)
    old = json.loads((tmp_path / "df.json").read_text())
    del old["pair_df"]
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert DocumentFrequencies.load(tmp_path / "old.json").pair_df("D6", "Q1") == 2
    (tmp_path / "bad.json").write_text('{"kind": "pair-history"}', encoding="utf-8")
    with pytest.raises(InputError, match="not a document-frequencies file"):
        DocumentFrequencies.load(tmp_path / "bad.json")


def test_idf_ranks_rarer_descriptors_higher(en: Matcher) -> None:
    doc = Document("d", "", "Insulin and hypertension.")
    freqs = DocumentFrequencies(100, 3.0, {"D4": 50, "D8": 2})
    heads = Indexer(en, frequencies=freqs).index(doc).keyphrases
    assert [h.descriptor_id for h in heads] == ["D8", "D4"]


def test_pair_history_validates_pairs_and_gives_an_optional_prior(en: Matcher, tmp_path: Path) -> None:
    h = PairHistory.from_gold(VDATA / "gold_en.jsonl", en.thesaurus)
    assert h.pairs[("D2", "Q1")] == 1 and h.descriptors["D2"] == 1
    assert h.pairs[("D10", "Q3")] == 1 and h.pairs[("D8", "Q4")] == 1  # labels resolved to ids
    assert h.probability("D2", "Q1") == pytest.approx(0.5)  # 1 / (1 + 1)
    h.save(tmp_path / "h.json")
    assert PairHistory.load(tmp_path / "h.json") == h
    doc = Document("d", "", "Type 1 diabetes treatment. Hypertension treatment.")
    plain = {k.phrase: k.score for k in Indexer(en).index(doc).keyphrases}
    pred = Indexer(en, history=h).index(doc)
    checked = {k.phrase: k.score for k in pred.keyphrases}
    # a pair the catalogue has assigned before is kept with the same score (the history does not demote) ...
    assert checked["Diabetes Mellitus, Type 1/therapy"] == plain["Diabetes Mellitus, Type 1/therapy"]
    # ... one it never assigned (hypertension/therapy, allowed by the thesaurus) is rejected
    assert "Hypertension/therapy" in plain and "Hypertension/therapy" not in checked
    assert pred.meta["rejected_pairs"] == 1
    unfiltered = Indexer(en, IndexConfig(history_filter=False), history=h).index(doc)
    assert "Hypertension/therapy" in unfiltered.phrases
    # the optional prior raises a known pair: × (1 + 1 · P(therapy | D2)) = × 1.5
    prior = {k.phrase: k.score for k in Indexer(en, IndexConfig(history_prior=1.0), history=h).index(doc).keyphrases}
    assert prior["Diabetes Mellitus, Type 1/therapy"] == pytest.approx(plain["Diabetes Mellitus, Type 1/therapy"] * 1.5)


def test_config_validation() -> None:
    assert IndexConfig.parse_weights("title=3, text=1,headings") == {"title": 3.0, "text": 1.0, "headings": 1.0}
    with pytest.raises(ConfigError, match="bad field weight"):
        IndexConfig.parse_weights("title=x")
    with pytest.raises(ConfigError, match="min terms"):
        IndexConfig(min_terms=5, max_terms=2)
    with pytest.raises(ConfigError, match="major ratio"):
        IndexConfig(major_ratio=0.0)


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, ["-q", *args])
    return r.exit_code, r.stdout, r.stderr


def test_cli_index_and_evaluate_english(tmp_path: Path) -> None:
    out = tmp_path / "en.jsonl"
    code, _, err = run("vocab", "index", "-t", str(DATA / "thesaurus_en.json"),
                       str(VDATA / "docs_en.jsonl"), "--out", str(out))
    assert code == 0, err
    assert "wrote 3 documents" in err and "8 headings kept" in err
    preds = {p.id: p for p in read_predictions(out)}  # the generic reader accepts the output
    assert preds["e2"].phrases == ["Breast Neoplasms", "Aged", "Breast Neoplasms/prevention & control",
                                   "Mass Screening"]
    assert preds["e3"].phrases == ["Hypertension", "Hypertension/drug therapy", "Aged"]
    assert preds["e3"].meta["cutoff"] == 2
    code, text, err = run("vocab", "evaluate", "--gold", str(VDATA / "gold_en.jsonl"), "--pred", str(out), "--format", "json")
    assert code == 0, err
    res = json.loads(text)
    # headings, per doc (P@2, P@4, P at cut-off, R): e1 hits [-, Humans, D2/therapy, Insulin], cut 3 → .5 .75 2/3 2/3
    # e2 [-, Aged, BN/prevention, -], cut 3 → .5 .5 2/3 1;  e3 [-, Hyp/drug therapy, Aged], cut 2 → .5 .5 .5 1/3
    assert res["with_pairs"]["mean_cutoff"] == pytest.approx((3 + 3 + 2) / 3)
    assert res["with_pairs"]["p_at_2"] == pytest.approx(0.5)
    assert res["with_pairs"]["p_at_4"] == pytest.approx((0.75 + 0.5 + 0.5) / 3)
    assert res["with_pairs"]["precision"] == pytest.approx((2 / 3 + 2 / 3 + 0.5) / 3)
    assert res["with_pairs"]["recall"] == pytest.approx((2 / 3 + 1 + 1 / 3) / 3)
    # the same run without pairs, against the same gold (its pairs can no longer be found):
    # e1 [D2 ✗ (gold has D2 only with therapy), Humans ✓, Insulin ✓], cut 2 of the first 3 → P@2 .5, P@4 .5, P .5, R 1/3
    # e2 [BN ✗, Aged ✓, Mass Screening ✗], cut 2 → .5, .25, .5, 1/2;  e3 [Hyp ✗, Aged ✓], cut 1 → .5, .25, 0, 0
    assert res["without_pairs"]["mean_cutoff"] == pytest.approx((2 + 2 + 1) / 3)
    assert res["without_pairs"]["p_at_2"] == pytest.approx(0.5)
    assert res["without_pairs"]["p_at_4"] == pytest.approx((0.5 + 0.25 + 0.25) / 3)
    assert res["without_pairs"]["precision"] == pytest.approx((0.5 + 0.5 + 0) / 3)
    assert res["without_pairs"]["recall"] == pytest.approx((1 / 3 + 1 / 2 + 0) / 3)
    # relaxed, descriptors alone: e1 [D2, Humans, Insulin] vs {Insulin, Humans, D2}, cut 2 → 1, .75, 1, 2/3
    # e2 [BN, Aged, Mass Screening] vs {D6, BN}, cut 2 → 1, .5, 1, 1;  e3 [Hyp, Aged] vs {Hyp, Aged, CVD}, cut 1
    assert res["relaxed_descriptors"]["p_at_2"] == pytest.approx(1.0)
    assert res["relaxed_descriptors"]["p_at_4"] == pytest.approx((0.75 + 0.5 + 0.5) / 3)
    assert res["relaxed_descriptors"]["precision"] == pytest.approx(1.0)
    assert res["relaxed_descriptors"]["recall"] == pytest.approx((2 / 3 + 1 + 1 / 3) / 3)
    assert res["n_docs"] == 3 and res["missing_predictions"] == 0
    code, text, err = run("vocab", "evaluate", "--gold", str(VDATA / "gold_en.jsonl"), "--pred", str(out))
    assert code == 0, err
    lines = text.splitlines()
    assert [line.split("  ")[0].strip() for line in lines[1:4]] == [
        "with pairs", "without pairs", "relaxed: pairs as descriptors"]
    assert lines[4] == ("with / without pairs: cut-off 2.67/1.67, P 0.611/0.333, R 0.667/0.278, P@2 0.500/0.500, "
                        "P@4 0.583/0.333")


def test_the_run_without_pairs_is_the_indexer_without_qualifiers(tmp_path: Path) -> None:
    """Removing the pair headings from an output gives what the indexer gives with no qualifiers at all."""
    from esrank.corpus import read_documents

    data = json.loads((DATA / "thesaurus_en.json").read_text())
    bare = {"language": "en", "descriptors": [{k: v for k, v in d.items() if k != "allowed_qualifiers"}
                                              for d in data["descriptors"]]}
    (tmp_path / "bare.json").write_text(json.dumps(bare))
    full, none = Indexer(Matcher(load_thesaurus(DATA / "thesaurus_en.json"))), \
        Indexer(Matcher(load_thesaurus(tmp_path / "bare.json")))
    for doc in read_documents(VDATA / "docs_en.jsonl"):
        with_pairs, without = full.index(doc), none.index(doc)
        kept = with_pairs.keyphrases[:with_pairs.meta["cutoff"]]
        assert [h.phrase for h in with_pairs.keyphrases if "/" not in h.phrase] == without.phrases
        assert sum(1 for h in kept if "/" not in h.phrase) == without.meta["cutoff"]


def test_cli_index_and_evaluate_french_with_df_and_history(tmp_path: Path) -> None:
    th = str(DATA / "thesaurus_fr.json")
    docs = str(VDATA / "docs_fr.jsonl")
    code, _, err = run("vocab", "df", "-t", th, docs, "--out", str(tmp_path / "df.json"))
    assert code == 0, err
    assert json.loads((tmp_path / "df.json").read_text())["df"]["F1"] == 1
    code, _, err = run("vocab", "history", "--gold", str(VDATA / "gold_fr.jsonl"), "--out", str(tmp_path / "h.json"),
                       "-t", th)
    assert code == 0 and "3 distinct pairs" in err
    out = tmp_path / "fr.jsonl"
    code, _, err = run("vocab", "index", "-t", th, docs, "--out", str(out), "--df", str(tmp_path / "df.json"),
                       "--history", str(tmp_path / "h.json"))
    assert code == 0, err
    preds = {p.id: p for p in read_predictions(out)}
    assert preds["f1"].phrases[0] == "sujet âgé"  # sujets âgés + personne âgée + personnes âgées
    assert "diabète de type 2/thérapeutique" in preds["f1"].phrases
    assert "diabète de type 1/prévention et contrôle" in preds["f2"].phrases  # the rule "dépistage du {D}"
    code, text, _ = run("vocab", "evaluate", "--gold", str(VDATA / "gold_fr.jsonl"), "--pred", str(out))
    assert code == 0 and text.splitlines()[0].split() == ["run", "cut-off", "P", "R", "F1", "P@2", "P@4"]


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "t.json"
    bad.write_text('{"descriptors": [{"id": "A", "label": "a", "broader": ["B"]}]}', encoding="utf-8")
    code, _, err = run("vocab", "index", "-t", str(bad), str(VDATA / "docs_en.jsonl"),
                       "--out", str(tmp_path / "o.jsonl"))
    assert code == 2 and err.strip() == f"esrank: error: {bad}: descriptor 'A': broader 'B' is not a descriptor id"
    code, _, err = run("vocab", "index", "-t", str(DATA / "thesaurus_en.json"), str(VDATA / "docs_en.jsonl"),
                       "--out", str(tmp_path / "o.jsonl"), "--lang", "xx")
    assert code == 2 and "unsupported language 'xx'" in err


def test_evaluate_counts_missing_documents_and_reads_plain_predictions(tmp_path: Path) -> None:
    pred = tmp_path / "p.jsonl"
    pred.write_text(json.dumps({"id": "a", "cutoff": 3, "keyphrases": [
        {"phrase": "Diabetes Mellitus, Type 1", "descriptor_id": "D2"},
        {"phrase": "Diabetes Mellitus, Type 1/therapy", "descriptor_id": "D2", "qualifier_id": "Q1"},
        "Humans", "Hypertension/epidemiology", "insulin"]}) + "\n", encoding="utf-8")
    gold = tmp_path / "g.jsonl"
    gold.write_text('{"id": "a", "descriptors": ["D2", "Insulin"], "pairs": [["D8", "Q5"], ["D2", "Q4"]]}\n'
                    '{"id": "b", "keyphrases": ["Insulin"]}\n', encoding="utf-8")
    assert [g.pairs for g in read_gold(gold)] == [[("D8", "Q5"), ("D2", "Q4")], []]
    r = evaluate_indexing(gold, pred)
    # doc a, headings: hits [D2 ✓, D2/Q1 ✗, Humans ✗, Hypertension/epidemiology ✗ (gold names D8/Q5), insulin ✓]
    # P@2 1/2, P@4 1/4, at cut-off 3: P 1/3, R 1/4; doc b has no prediction: all 0
    assert (r.with_pairs.p_at_2, r.with_pairs.p_at_4) == (pytest.approx(0.25), pytest.approx(0.125))
    assert (r.with_pairs.precision, r.with_pairs.recall) == (pytest.approx(1 / 6), pytest.approx(1 / 8))
    assert r.with_pairs.f1 == pytest.approx((2 / 7) / 2)
    # descriptors: [D2, Humans, Hypertension, insulin] vs {D2, Insulin, D8}; cut-off 3 headings → 2 descriptors
    assert (r.relaxed_descriptors.p_at_2, r.relaxed_descriptors.p_at_4) == (pytest.approx(0.25), pytest.approx(0.25))
    assert (r.relaxed_descriptors.precision, r.relaxed_descriptors.recall) == (pytest.approx(0.25), pytest.approx(1 / 6))
    assert r.relaxed_descriptors.f1 == pytest.approx(0.2) and (r.n_docs, r.missing_predictions) == (2, 1)
    # with the thesaurus, labels resolve to ids: Hypertension/epidemiology = D8/Q5 → doc a P@4 2/4 (insulin is 5th),
    # descriptors [D2 ✓, Humans ✗, D8 ✓, D4 ✓] → 3/4
    r = evaluate_indexing(gold, pred, load_thesaurus(DATA / "thesaurus_en.json"))
    assert (r.with_pairs.p_at_4, r.relaxed_descriptors.p_at_4) == (pytest.approx(0.25), pytest.approx(0.375))
    assert r.with_pairs.precision == pytest.approx(1 / 6)  # the pair is 4th, after the cut-off
    gold.write_text('{"id": "a", "pairs": [["D8"]]}\n', encoding="utf-8")
    with pytest.raises(InputError, match=":1: 'descriptors'"):
        evaluate_indexing(gold, pred)


def test_cli_keyphrase_vocabulary_and_collection_frequencies(tmp_path: Path) -> None:
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("\n".join(json.dumps(r) for r in [
        {"id": "1", "title": "Neural networks for parsing", "abstract": "We parse with neural networks.",
         "keyphrases": ["neural networks", "parsing"]},
        {"id": "2", "title": "Parsing trees", "abstract": "A neural network parses.", "keyphrases": ["Neural network"]},
        {"id": "3", "title": "Weather", "abstract": "Rain and parsing.", "keyphrases": []},
    ]) + "\n", encoding="utf-8")
    th = tmp_path / "kv.json"
    code, _, err = run("vocab", "from-keyphrases", str(corpus), "--out", str(th))
    assert code == 0 and "2 descriptors" in err, err
    labels = {d["label"]: d.get("synonyms", []) for d in json.loads(th.read_text())["descriptors"]}
    assert labels == {"Neural network": ["neural networks"], "parsing": []}  # a tie: sorted spellings decide
    out = tmp_path / "o.jsonl"
    code, _, err = run("vocab", "index", "-t", str(th), str(corpus), "--out", str(out),
                       "--collection", str(corpus), "--fields", "text=1")
    assert code == 0, err
    preds = {p.id: p for p in read_predictions(out)}
    # text only: doc 1 mentions both once; "parsing" is in 3 of 3 texts (parse, parses, parsing all stem to pars)
    # so its idf is lower than that of "neural networks" (2 of 3)
    assert preds["1"].phrases[:2] == ["Neural network", "parsing"]
    assert preds["3"].phrases == ["parsing"]
    code, _, err = run("vocab", "index", "-t", str(th), str(corpus), "--out", str(out),
                       "--collection", str(corpus), "--df", str(tmp_path / "df.json"))
    assert code == 2 and "either as a file or as a collection" in err
