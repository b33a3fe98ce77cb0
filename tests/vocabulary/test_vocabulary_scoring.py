"""Each scoring step on hand-computed values, including the worked hierarchy example."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from esrank.corpus import Document
from esrank.vocabulary.automaton import Match, Matcher
from esrank.vocabulary.collection import DocumentFrequencies
from esrank.vocabulary.indexer import IndexConfig, Indexer
from esrank.vocabulary.scoring import (PairEvidence, adaptive_cutoff, apply_check_tags, form_pairs, is_major,
                                       occurrences, promoted_check_tags, rsj_idf, score_pairs, share_hierarchy, tfidf,
                                       weighted_counts)
from esrank.vocabulary.thesaurus import Thesaurus, load_thesaurus, thesaurus_from_dict

DATA = Path(__file__).resolve().parents[1] / "data"
W = {"title": 2.0, "text": 1.0}


@pytest.fixture(scope="module")
def th() -> Thesaurus:
    return load_thesaurus(DATA / "thesaurus_en.json")


def m(kind: str, concept: str, sentence: int, field: str = "text") -> Match:
    return Match(kind, concept, field, sentence, 0, 1, 0, 1, concept)


def test_worked_example_parent_shared_among_children(th: Thesaurus) -> None:
    shared = share_hierarchy({"D1": 10.0, "D2": 15.0, "D3": 4.0}, th)
    assert shared.counts == {"D2": 20.0, "D3": 9.0}  # diabetes 10 → 5 + 5, and diabetes is gone
    assert shared.shared_to == {"D1": ["D2", "D3"]}


def test_worked_example_from_text(th: Thesaurus) -> None:
    text = "Diabetes. " * 10 + "Type 1 diabetes. " * 15 + "Type 2 diabetes mellitus. " * 4
    matches = Matcher(th).match(Document("d", "", text))
    counts = weighted_counts(matches, W)
    assert counts == {"D1": 10.0, "D2": 15.0, "D3": 4.0}
    assert share_hierarchy(counts, th).counts == {"D2": 20.0, "D3": 9.0}


def test_parent_without_children_present_keeps_its_count_and_grandparents_go_to_the_deepest(th: Thesaurus) -> None:
    assert share_hierarchy({"D1": 3.0, "D8": 2.0}, th).counts == {"D1": 3.0, "D8": 2.0}
    chain = thesaurus_from_dict({"descriptors": [
        {"id": "D1", "label": "a"}, {"id": "D2", "label": "b", "broader": ["D1"]},
        {"id": "D3", "label": "c", "broader": ["D1"]}, {"id": "D4", "label": "d", "broader": ["D2"]}]})
    got = share_hierarchy({"D1": 6.0, "D2": 4.0, "D4": 1.0, "D3": 0.0}, chain)
    # D2 (deeper) first: D4 = 1 + 4; then D1's 6 is shared between D3 and D4 (D2 is gone): 3 each
    assert got.counts == {"D3": 3.0, "D4": 8.0}


def test_field_weights_count_title_occurrences_higher() -> None:
    ms = [m("D", "A", 0, "title"), m("D", "A", 1), m("D", "B", 1), m("Q", "Q1", 1), m("D", "C", 2, "headings")]
    assert weighted_counts(ms, W) == {"A": 3.0, "B": 1.0, "C": 1.0}
    assert weighted_counts(ms, {"title": 3.0, "text": 1.0, "headings": 1.5})["C"] == 1.5
    assert occurrences(ms) == {"A": 2, "B": 1, "C": 1}


def test_check_tag_seen_more_than_once_takes_the_top_descriptor_score(th: Thesaurus) -> None:
    scores = {"D2": 20.0, "D3": 9.0, "D5": 2.0, "D6": 1.0}
    got = apply_check_tags(scores, {"D2": 15, "D3": 4, "D5": 2, "D6": 1}, th)
    assert got == {"D2": 20.0, "D3": 9.0, "D5": 20.0, "D6": 1.0}  # D6 (aged) seen once stays
    assert promoted_check_tags(scores, {"D5": 2, "D6": 1}, th) == {"D5"}


def test_check_tag_gets_the_top_score_after_weighting_and_is_always_kept(th: Thesaurus) -> None:
    """The issue's example: a check tag raised to the top *count* before tf·idf fell back to 0.22 against 6.2,
    as check tags are in most documents (low idf); raised after weighting it keeps the top score, and it is
    selected even where the cut-off would stop."""
    freqs = DocumentFrequencies(1000, 10.0, {"D5": 990, "D8": 2, "D4": 300, "D11": 250})
    doc = Document("d", "", "Patients. Patients. Hypertension. Hypertension. Hypertension. Insulin. Screening.")
    pred = Indexer(Matcher(th), IndexConfig(max_terms=1), freqs).index(doc)
    got = {h.phrase: h.score for h in pred.keyphrases}
    top = got["Hypertension"]
    assert got["Humans"] == top  # not 2 occurrences × idf(990 of 1000) = a tiny score
    assert tfidf({"D5": 2.0}, 12, n_docs=1000, df={"D5": 990}, avg_len=10.0)["D5"] < top / 50
    assert pred.meta["cutoff"] == 2 and pred.phrases[:2] == ["Hypertension", "Humans"]  # max_terms=1, plus Humans
    # seen once, a check tag is an ordinary descriptor: scored by tf·idf, subject to the cut-off
    once = Indexer(Matcher(th), IndexConfig(max_terms=1), freqs).index(Document("d", "", "Patients. Hypertension."))
    assert once.meta["cutoff"] == 1 and once.phrases[0] == "Hypertension"


def test_isolated_qualifier_goes_to_one_of_the_two_most_frequent_keywords(th: Thesaurus) -> None:
    """Type 1 diabetes ×3, insulin ×2, hypertension ×1, then "prevalence" alone in its sentence. By tf·idf the two
    best are hypertension and insulin (rare in the collection); by frequency type 1 diabetes and insulin. The
    paper attaches the qualifier to one of the two most frequent: insulin does not take epidemiology, so D2
    (by tf·idf it went to hypertension)."""
    freqs = DocumentFrequencies(100, 20.0, {"D2": 90, "D4": 1, "D8": 1})
    doc = Document("d", "", "Type 1 diabetes. Type 1 diabetes. Type 1 diabetes. Insulin. Insulin. Hypertension. "
                            "The prevalence was high.")
    sc = Indexer(Matcher(th), frequencies=freqs).score(doc)
    assert set(sorted(sc.scores, key=lambda d: -sc.scores[d])[:2]) == {"D4", "D8"}
    assert list(sc.pairs.pairs) == [("D2", "Q5")] and sc.pairs.pairs[("D2", "Q5")].via == {"isolated"}


def test_tfidf_with_length_normalisation_by_hand() -> None:
    # norm = 1.2 * (0.25 + 0.75 * 100/50) = 2.1; tf part = 2 * 2.2 / (2 + 2.1) = 1.0731707
    # idf = ln(1 + (10 - 1 + 0.5) / (1 + 0.5)) = ln(7.3333333) = 1.9924302
    got = tfidf({"A": 2.0, "B": 2.0}, 100, n_docs=10, df={"A": 1, "B": 9}, avg_len=50.0)
    assert got["A"] == pytest.approx(1.0731707 * 1.9924302, rel=1e-6)
    assert got["B"] == pytest.approx(1.0731707 * math.log(1 + 1.5 / 9.5), rel=1e-6)
    assert rsj_idf(10, 10) > 0  # stays positive for a descriptor in every document
    # no collection: idf 1 and the document counts as average length: 2 * 2.2 / (2 + 1.2) = 1.375
    assert tfidf({"A": 2.0}, 7) == {"A": pytest.approx(1.375)}
    short, long_ = tfidf({"A": 2.0}, 25, n_docs=10, avg_len=50.0), tfidf({"A": 2.0}, 100, n_docs=10, avg_len=50.0)
    assert short["A"] > long_["A"]


def test_pairs_from_the_same_sentence_are_validated(th: Thesaurus) -> None:
    ms = [m("Q", "Q1", 0), m("D", "D2", 0), m("D", "D4", 0), m("D", "D5", 0)]
    got = form_pairs(ms, {"D2": 2.0, "D4": 1.0, "D5": 2.0}, th, W)
    assert set(got.pairs) == {("D2", "Q1")}  # insulin/therapy and humans/therapy are not allowed
    assert got.rejected == 2
    assert got.pairs[("D2", "Q1")].support == 1.0 and got.pairs[("D2", "Q1")].via == {"sentence"}


def test_a_dropped_parent_passes_its_pairs_to_the_children(th: Thesaurus) -> None:
    ms = [m("D", "D1", 0), m("Q", "Q4", 0, "title"), m("D", "D3", 1)]
    got = form_pairs(ms, {"D3": 2.0}, th, W, shared_to={"D1": ["D3"]})
    assert list(got.pairs) == [("D3", "Q4")] and got.pairs[("D3", "Q4")].support == 2.0


def test_isolated_qualifier_attaches_to_one_of_the_two_top_descriptors(th: Thesaurus) -> None:
    ms = [m("D", "D2", 0), m("D", "D8", 1), m("D", "D4", 2), m("Q", "Q5", 3)]
    scores = {"D2": 3.0, "D8": 2.0, "D4": 1.0}
    assert list(form_pairs(ms, scores, th, W).pairs) == [("D2", "Q5")]  # both allowed: the more frequent
    got = form_pairs(ms, scores, th, W, history={("D8", "Q5"): 4})
    assert list(got.pairs) == [("D8", "Q5")] and got.pairs[("D8", "Q5")].via == {"isolated"}
    only_d4_d5 = form_pairs([m("D", "D4", 0), m("D", "D5", 1), m("Q", "Q5", 2)], {"D4": 2.0, "D5": 1.0}, th, W)
    assert only_d4_d5.pairs == {} and only_d4_d5.rejected == 1  # neither top descriptor allows epidemiology


def test_rules_add_pairs(th: Thesaurus) -> None:
    rule_match = m("D", "D10", 0)
    got = form_pairs([rule_match], {"D10": 1.0}, th, W, rule_pairs=[("D10", "Q3", rule_match)])
    assert got.pairs[("D10", "Q3")].via == {"rule"} and got.pairs[("D10", "Q3")].support == 1.0


def test_pairs_are_scored_with_the_same_tfidf_as_descriptors() -> None:
    """A pair is weighted by its frequency in the document and its document frequency in the collection."""
    pairs = {("A", "q"): PairEvidence(support=1.0), ("B", "q"): PairEvidence(support=3.0)}
    # no collection: idf 1 and average length, as for a descriptor: 1·2.2/(1+1.2) = 1, 3·2.2/(3+1.2)
    got = score_pairs(pairs, 7)
    assert got == {("A", "q"): pytest.approx(1.0), ("B", "q"): pytest.approx(3 * 2.2 / 4.2)}
    assert got[("A", "q")] == tfidf({"A": 1.0}, 7)["A"]  # a pair seen once scores like a descriptor seen once
    # a collection of 10 documents of average length 50: descriptor A in 5, the pair A/q in 1 → the rarer pair
    # outranks its descriptor (A: 3 occurrences, the pair: 2 of them)
    desc = tfidf({"A": 3.0}, 50, n_docs=10, df={"A": 5}, avg_len=50.0)["A"]
    pair = score_pairs({("A", "q"): PairEvidence(support=2.0)}, 50, n_docs=10, df={("A", "q"): 1}, avg_len=50.0)
    assert desc == pytest.approx(3 * 2.2 / 4.2 * math.log(2.0))
    assert pair[("A", "q")] == pytest.approx(2 * 2.2 / 3.2 * math.log(1 + 9.5 / 1.5)) and pair[("A", "q")] > desc
    # the history prior only raises: × (1 + weight · P(q | A))
    got = score_pairs(pairs, 7, history_prob={("A", "q"): 0.5}, prior_weight=1.0)
    assert got[("A", "q")] == pytest.approx(1.5) and got[("B", "q")] == pytest.approx(3 * 2.2 / 4.2)


def test_history_filter_keeps_only_pairs_assigned_before(th: Thesaurus) -> None:
    ms = [m("D", "D2", 0), m("Q", "Q1", 0), m("D", "D8", 1), m("Q", "Q1", 1)]
    counts = {"D2": 1.0, "D8": 1.0}
    assert set(form_pairs(ms, counts, th, W).pairs) == {("D2", "Q1"), ("D8", "Q1")}
    got = form_pairs(ms, counts, th, W, history={("D2", "Q1"): 3}, history_filter=True)
    assert set(got.pairs) == {("D2", "Q1")} and got.rejected == 1


def test_adaptive_cutoff_keeps_terms_above_the_largest_relative_gap() -> None:
    s = [10.0, 9.0, 8.0, 2.0, 1.0]  # relative gaps 0.10, 0.11, 0.75, 0.50
    assert adaptive_cutoff(s) == 3
    assert adaptive_cutoff(s, min_terms=4) == 4
    assert adaptive_cutoff(s, max_terms=2) == 2
    assert adaptive_cutoff([20.0, 9.0]) == 1
    assert adaptive_cutoff([5.0, 5.0, 5.0], max_terms=2) == 2  # no break: keep as many as allowed
    assert adaptive_cutoff([5.0], min_terms=2) == 1 and adaptive_cutoff([]) == 0


def test_major_minor_threshold() -> None:
    assert is_major(5.0, 10.0) and not is_major(4.9, 10.0)
    assert is_major(8.0, 10.0, ratio=0.8) and not is_major(0.0, 0.0)
