"""Thesaurus loading, validation errors, hierarchy, allowed pairs and the keyphrase vocabulary."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from esrank.errors import InputError
from esrank.vocabulary.thesaurus import load_thesaurus, thesaurus_from_dict, thesaurus_from_keyphrases

DATA = Path(__file__).resolve().parents[1] / "data"


def test_english_thesaurus_loads_with_hierarchy_from_broader_and_narrower_links() -> None:
    th = load_thesaurus(DATA / "thesaurus_en.json")
    assert th.language == "en" and len(th.descriptors) == 12 and len(th.qualifiers) == 6
    assert sorted(th.narrower["D1"]) == ["D2", "D3"]
    assert th.descriptors["D8"].broader == ["D7"]  # from D7's "narrower" list
    assert th.descendants("D1") == {"D2", "D3"}
    assert (th.depth("D1"), th.depth("D2")) == (0, 1)
    assert th.descriptors["D5"].check_tag and not th.descriptors["D1"].check_tag
    assert th.rules[0].before == "screening of" and th.rules[0].after == "" and th.rules[0].qualifier == "Q3"


def test_allowed_pairs_explicit_and_inherited_by_the_subtree() -> None:
    th = load_thesaurus(DATA / "thesaurus_en.json")
    assert th.pair_allowed("D8", "Q4")  # explicit pair
    assert not th.pair_allowed("D7", "Q4")  # explicit pairs are not inherited
    assert th.pair_allowed("D2", "Q1")  # D1's allowed_qualifiers reach its narrower D2
    assert not th.pair_allowed("D2", "Q3")
    assert th.pair_allowed("D10", "Q3") and not th.pair_allowed("D4", "Q1")


def test_without_declared_pairs_every_pair_is_allowed() -> None:
    th = thesaurus_from_dict({"descriptors": [{"id": "A", "label": "a"}], "qualifiers": [{"id": "q", "label": "q"}]})
    assert th.pair_allowed("A", "q") and not th.pair_allowed("A", "nope")


def test_json_round_trip_keeps_everything() -> None:
    th = load_thesaurus(DATA / "thesaurus_fr.json")
    again = thesaurus_from_dict(json.loads(json.dumps(th.to_json())))
    assert again.descriptors == th.descriptors and again.qualifiers == th.qualifiers
    assert again.allowed_pairs == th.allowed_pairs and again.rules == th.rules and again.language == "fr"


BASE = {"qualifiers": [{"id": "Q", "label": "therapy"}]}


@pytest.mark.parametrize("data, message", [
    ([], "must be a JSON object"),
    ({"descriptors": []}, "'descriptors' must be a non-empty list"),
    ({"descriptors": [{"label": "x"}]}, "descriptors[0]: missing or empty 'id'"),
    ({"descriptors": [{"id": "A", "label": " "}]}, "descriptors[0] (id 'A'): missing or empty 'label'"),
    ({"descriptors": [{"id": "A", "label": "a"}, {"id": "A", "label": "b"}]}, "descriptors[1] (id 'A'): duplicate"),
    ({"descriptors": [{"id": "A", "label": "a", "broader": ["Z"]}]}, "descriptor 'A': broader 'Z' is not a descriptor"),
    ({"descriptors": [{"id": "A", "label": "a", "narrower": ["Z"]}]}, "narrower 'Z' is not a descriptor id"),
    ({"descriptors": [{"id": "A", "label": "a", "broader": ["B"]}, {"id": "B", "label": "b", "broader": ["A"]}]},
     "makes a cycle"),
    ({"descriptors": [{"id": "A", "label": "a", "synonyms": "x y"}], "x": 1}, None),
    ({"descriptors": [{"id": "A", "label": "a", "synonyms": [1]}]}, "'synonyms' must be a list of strings"),
    ({"descriptors": [{"id": "A", "label": "a", "check_tag": "yes"}]}, "'check_tag' must be true or false"),
    ({**BASE, "descriptors": [{"id": "A", "label": "a", "allowed_qualifiers": ["X"]}]},
     "allowed qualifier 'X' is not a qualifier id"),
    ({**BASE, "descriptors": [{"id": "A", "label": "a"}], "allowed_pairs": [["A", "X"]]},
     "allowed_pairs[0]: 'X' is not a qualifier id"),
    ({**BASE, "descriptors": [{"id": "A", "label": "a"}], "allowed_pairs": [["A"]]}, "allowed_pairs[0]: must be"),
    ({**BASE, "descriptors": [{"id": "A", "label": "a"}], "rules": [{"pattern": "screening of", "qualifier": "Q"}]},
     "must hold the slot {D} exactly once"),
    ({**BASE, "descriptors": [{"id": "A", "label": "a"}], "rules": [{"pattern": "of {D}", "qualifier": "Z"}]},
     "rules[0]: 'Z' is not a qualifier id"),
    ({"qualifiers": [{"id": "Q", "label": "q"}, {"id": "Q", "label": "r"}], "descriptors": [{"id": "A", "label": "a"}]},
     "qualifiers[1]: duplicate qualifier id 'Q'"),
])
def test_bad_entries_are_named_in_the_error(data: object, message: str | None) -> None:
    if message is None:  # a single string is accepted as a one-element list
        assert thesaurus_from_dict(data).descriptors["A"].synonyms == ["x y"]
        return
    with pytest.raises(InputError) as e:
        thesaurus_from_dict(data)
    assert message in str(e.value)


def test_file_errors_give_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "t.json"
    bad.write_text('{"descriptors": [\n  {"id": "A", "label": "a"},\n  oops\n]}', encoding="utf-8")
    with pytest.raises(InputError) as e:
        load_thesaurus(bad)
    assert e.value.one_line().startswith(f"{bad}:3: malformed JSON")
    bad.write_text('{"descriptors": [{"id": "A", "label": "a", "broader": ["B"]}]}', encoding="utf-8")
    with pytest.raises(InputError) as e:
        load_thesaurus(bad)
    assert e.value.one_line() == f"{bad}: descriptor 'A': broader 'B' is not a descriptor id"
    with pytest.raises(InputError, match="no such file"):
        load_thesaurus(tmp_path / "missing.json")


def test_vocabulary_from_keyphrases_merges_spellings_by_stem() -> None:
    th = thesaurus_from_keyphrases([["Neural networks", "SVM"], ["neural network", "Neural networks"], ["svm"]])
    by_label = {d.label: d for d in th.descriptors.values()}
    assert set(by_label) == {"Neural networks", "SVM"}
    assert by_label["Neural networks"].synonyms == ["neural network"]
    assert by_label["SVM"].synonyms == ["svm"]
    assert len(thesaurus_from_keyphrases([["a b", "a b"], ["c"]], min_count=2).descriptors) == 1
    with pytest.raises(InputError, match="no keyphrases"):
        thesaurus_from_keyphrases([[], []])


def test_skos_turtle_reader(tmp_path: Path) -> None:
    ttl = DATA / "vocabulary" / "thesaurus_fr.ttl"
    th = load_thesaurus(ttl, "fr")
    assert set(th.descriptors) == {"diabete", "diabete1", "age", "population"}
    d = th.descriptors["diabete"]
    assert (d.label, d.synonyms) == ("diabète", ["diabète sucré"])  # the English labels are left out
    assert th.descriptors["diabete1"].broader == ["diabete"]  # from skos:narrower
    age = th.descriptors["age"]
    assert (age.synonyms, age.variants, age.broader) == ([], ['personne "âgée"'], ["population"])  # hiddenLabel
    assert th.descriptors["population"].label == "population"  # untagged literal
    guessed = load_thesaurus(ttl)  # most preferred labels are tagged @fr
    assert guessed.language == "fr" and guessed.descriptors["diabete"].label == "diabète"
    en = load_thesaurus(ttl, "en")
    assert en.descriptors["diabete"].label == "diabetes" and en.descriptors["diabete"].synonyms == []
    assert en.descriptors["diabete1"].label == "diabète de type 1"  # no English label: any language
    bad = tmp_path / "bad.ttl"
    bad.write_text("@prefix skos: <http://www.w3.org/2004/02/skos/core#> .\n"
                   "<x> a skos:Concept ;\n  skos:prefLabel \"x\" ;\n  skos:broader <y> .\n", encoding="utf-8")
    with pytest.raises(InputError) as e:
        load_thesaurus(bad)
    assert e.value.one_line() == f"{bad}: descriptor 'x': broader 'y' is not a descriptor id"
    bad.write_text("\n<x> a ex:Concept .\n", encoding="utf-8")
    with pytest.raises(InputError) as e:
        load_thesaurus(bad)
    assert e.value.one_line() == f'{bad}:2: not valid turtle: Prefix "ex:" not bound'


def test_skos_blank_nodes_collections_escapes_and_base(tmp_path: Path) -> None:
    """What the hand-written Turtle subset refused or got wrong: rdflib reads all of Turtle."""
    ttl = tmp_path / "full.ttl"
    ttl.write_text(r"""@base <http://example.org/voc/> .
@prefix skos: <http://www.w3.org/2004/02/skos/core#> .
@prefix dct: <http://purl.org/dc/terms/> .
<cafe> a skos:Concept ;
    skos:prefLabel "café"@fr, "coffee"@en ;
    skos:altLabel "petit noir"@fr ;
    skos:hiddenLabel "cafés"@fr ;
    skos:note [ a skos:Note ; dct:source "a blank node" ] ;
    dct:subject ( <a> <b> <c> ) ;
    skos:broader [ a skos:Concept ; skos:prefLabel "boisson"@fr ] .
[] a skos:Concept ; skos:prefLabel "thé"@fr ; skos:broader <cafe> .
""", encoding="utf-8")
    th = load_thesaurus(ttl)
    assert th.language == "fr"
    cafe = th.descriptors["cafe"]  # the relative IRI resolved against @base, named by its last segment
    assert (cafe.label, cafe.synonyms, cafe.variants) == ("café", ["petit noir"], ["cafés"])
    by_label = {d.label: d for d in th.descriptors.values()}
    assert set(by_label) == {"café", "thé", "boisson"}  # blank-node concepts are concepts too
    assert cafe.broader == [by_label["boisson"].id] and by_label["boisson"].id.startswith("_:")
    assert by_label["thé"].broader == ["cafe"]
    # the same vocabulary as N-Triples and RDF/XML (chosen by the extension)
    import rdflib

    g = rdflib.Graph().parse(ttl, format="turtle")
    (tmp_path / "full.nt").write_text(g.serialize(format="nt"), encoding="utf-8")
    (tmp_path / "full.rdf").write_text(g.serialize(format="xml"), encoding="utf-8")
    for other in ("full.nt", "full.rdf"):
        again = load_thesaurus(tmp_path / other)
        assert sorted(d.label for d in again.descriptors.values()) == ["boisson", "café", "thé"]
        assert again.descriptors["cafe"].variants == ["cafés"]


def test_variants_give_the_derived_forms_the_stemmer_misses(tmp_path: Path) -> None:
    """Derivation comes from the thesaurus, not the stemmer: "diagnostiquer" does not stem like "diagnostic"."""
    from esrank.corpus import Document
    from esrank.vocabulary.automaton import Matcher

    data = json.loads((DATA / "thesaurus_fr.json").read_text(encoding="utf-8"))
    doc = Document("d", "", "Diagnostiquer le diabète de type 2 tôt.")
    plain = Matcher(load_thesaurus(DATA / "thesaurus_fr.json"))
    assert [m.concept for m in plain.match(doc) if m.kind == "Q"] == []
    for q in data["qualifiers"]:
        if q["label"] == "diagnostic":
            q["variants"] = ["diagnostiquer", "diagnostiqué"]
    (tmp_path / "fr.json").write_text(json.dumps(data), encoding="utf-8")
    th = load_thesaurus(tmp_path / "fr.json")
    got = [(m.concept, m.text) for m in Matcher(th).match(doc) if m.kind == "Q"]
    assert got == [("FQ2", "Diagnostiquer")]
    assert th.to_json()["qualifiers"][1]["variants"] == ["diagnostiquer", "diagnostiqué"]  # round trip
    data["descriptors"][0]["variants"] = "âgés"  # one string is accepted, like synonyms
    data["descriptors"][1]["variants"] = [3]
    (tmp_path / "bad.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(InputError, match="'variants' must be a list of strings"):
        load_thesaurus(tmp_path / "bad.json")


def test_french_keyphrase_vocabulary_groups_by_french_stems() -> None:
    th = thesaurus_from_keyphrases([["Personnes âgées", "diabète"], ["personne agée", "Diabètes"]], language="fr")
    assert sorted((d.label, tuple(d.synonyms)) for d in th.descriptors.values()) == [
        ("Diabètes", ("diabète",)), ("Personnes âgées", ("personne agée",))]
    assert th.language == "fr"
