"""Normalisation (English, French) and the token automaton: synonyms, inflections, longest match, spans."""
from __future__ import annotations

from pathlib import Path

import pytest

from esrank.corpus import Document
from esrank.errors import ConfigError
from esrank.ranking.candidates import CandidatePool, add_candidates
from esrank.vocabulary.automaton import Automaton, Matcher, vocabulary_candidates
from esrank.vocabulary.normalise import Normaliser, language_code
from esrank.vocabulary.thesaurus import load_thesaurus

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def en() -> Matcher:
    return Matcher(load_thesaurus(DATA / "thesaurus_en.json"))


@pytest.fixture(scope="module")
def fr() -> Matcher:
    return Matcher(load_thesaurus(DATA / "thesaurus_fr.json"))


def found(m: Matcher, text: str, title: str = "") -> list[tuple[str, str, str]]:
    return [(x.kind, x.concept, x.text) for x in m.match(Document("d", title, text))]


def test_french_normalisation_folds_accents_after_stemming_and_drops_elisions() -> None:
    n = Normaliser("fr")
    assert n.phrase("sujets âgés") == n.phrase("sujet âgé") == n.phrase("SUJETS AGES") == ("sujet", "age")
    assert n.phrase("personnes âgées") == ("person", "age")
    assert n.phrase("l’insuline d'HTA") == ("insulin", "hta")


def test_english_normalisation_splits_hyphens_and_drops_clitics() -> None:
    n = Normaliser("en")
    assert n.phrase("Type-1 diabetes") == ("type", "1", "diabet")
    assert n.phrase("Alzheimer's diseases") == n.phrase("Alzheimer disease") == ("alzheim", "diseas")
    assert n.phrase("naïve patients") == ("naiv", "patient")


def test_languages_by_code_or_name() -> None:
    assert language_code("French") == "fr" and language_code("EN") == "en"
    with pytest.raises(ConfigError, match="unsupported language 'klingon'"):
        Normaliser("klingon")


def test_french_inflections_and_synonyms_reach_the_preferred_descriptor(fr: Matcher) -> None:
    got = found(fr, "Les sujets âgés. La personne âgée. Des personnes âgées.")
    assert got == [("D", "F1", "sujets âgés"), ("D", "F1", "personne âgée"), ("D", "F1", "personnes âgées")]
    assert fr.thesaurus.descriptors["F1"].label == "sujet âgé"


def test_longest_match_wins_over_shorter_overlapping_ones(en: Matcher, fr: Matcher) -> None:
    assert found(en, "juvenile diabetes and type 1 diabetes mellitus; diabetes") == [
        ("D", "D2", "juvenile diabetes"), ("D", "D2", "type 1 diabetes mellitus"), ("D", "D1", "diabetes")]
    assert found(en, "drug treatment of breast cancer") == [("Q", "Q4", "drug treatment"),
                                                          ("D", "D10", "breast cancer")]
    assert found(fr, "hypertension artérielle et hypertension") == [
        ("D", "F5", "hypertension artérielle"), ("D", "F5", "hypertension")]


def test_automaton_failure_links_find_entries_inside_other_prefixes() -> None:
    a = Automaton([(("a", "b", "c", "d"), 1), (("b", "c"), 2), (("c",), 3), (("x", "y"), 4)])
    words = ["a", "b", "c", "x", "y"]
    assert sorted(a.scan(words)) == [(1, 3, a.scan(["b", "c"])[0][2]), (2, 3, a.scan(["c"])[0][2]),
                                     (3, 5, a.scan(["x", "y"])[0][2])]
    assert [(s, e, a.payloads[n]) for s, e, n in a.longest(words)] == [(1, 3, (2,)), (3, 5, (4,))]
    assert a.longest(["a", "b", "c", "d"])[0][:2] == (0, 4)
    b = Automaton([(("a", "b"), 1), (("b", "c", "d"), 2), (("d", "e"), 3), (("e", "f"), 4)])
    # the longest wins an overlap even when it starts later; equally long: the leftmost
    assert [b.payloads[n] for _, _, n in b.longest(["a", "b", "c", "d", "e", "f"])] == [(2,), (4,)]
    assert [b.payloads[n] for _, _, n in b.longest(["d", "e", "f"])] == [(3,)]
    assert a.scan(["b", "zzz", "c"]) == [(2, 3, a.scan(["c"])[0][2])]  # unknown word resets the state
    assert a.scan(["b", "c"], [False, True]) == [(1, 2, a.scan(["c"])[0][2])]  # a break splits "b c"


def test_matches_do_not_cross_clause_punctuation(en: Matcher) -> None:
    assert found(en, "breast, cancer") == [("D", "D9", "cancer")]


def test_positions_sentences_and_fields_are_kept(en: Matcher) -> None:
    doc = Document("d", "Insulin for diabetes", "Patients were treated. Breast cancer too!")
    ms = en.match(doc)
    assert [(m.concept, m.field, m.sentence, m.start, m.end) for m in ms] == [
        ("D4", "title", 0, 0, 1), ("D1", "title", 0, 2, 3), ("D5", "text", 1, 0, 1), ("Q1", "text", 1, 2, 3),
        ("D10", "text", 2, 3, 5)]
    assert all(doc.title[m.char_start:m.char_end] == m.text for m in ms if m.field == "title")
    assert all(doc.text[m.char_start:m.char_end] == m.text for m in ms if m.field == "text")


def test_meta_fields_can_be_matched(en: Matcher) -> None:
    doc = Document("d", "", "Nothing here.", meta={"headings": ["Hypertension", "Insulin"]})
    assert [m.concept for m in en.match(doc, ("text", "headings"))] == ["D8", "D4"]


def test_rules_frame_a_descriptor(en: Matcher, fr: Matcher) -> None:
    for m, text, want in ((en, "Screening of breast cancer and screening of women", [("D10", "Q3")]),
                          (fr, "Le dépistage du diabète.", [("F2", "FQ3")])):
        ft = m.fields(Document("d", "", text))[0]
        assert [(d, q) for d, q, _ in m.rule_pairs(ft, m.match_field(ft))] == want


def test_vocabulary_candidates_join_a_candidate_pool(en: Matcher) -> None:
    doc = Document("d", "High blood pressure", "Hypertension and type 2 diabetes. Therapy.")
    labels = vocabulary_candidates(doc, en)
    assert labels == ["Hypertension", "Diabetes Mellitus, Type 2"]  # qualifiers are not candidates
    pool = CandidatePool("d")
    add_candidates(pool, ["hypertension"], "neighbours")
    add_candidates(pool, labels, "vocabulary")
    assert [(c.phrase, c.sources) for c in pool.candidates] == [
        ("hypertension", ("neighbours", "vocabulary")), ("Diabetes Mellitus, Type 2", ("vocabulary",))]


def test_candidate_source_for_ranking() -> None:
    from esrank.vocabulary.candidates import candidate_source

    source = candidate_source(DATA / "thesaurus_fr.json", lang="fr")
    assert source(Document("d", "Les personnes âgées", "et le diabète de type 1.")) == ["sujet âgé", "diabète de type 1"]
    with pytest.raises(ConfigError, match="need a thesaurus"):
        candidate_source(None)
