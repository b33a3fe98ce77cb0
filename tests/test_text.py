import re

import pytest

from esrank.text import dedupe_phrases, prepare, prmu_class, stemmed_key, tokenize


@pytest.mark.parametrize(
    "phrase,title,text,expected",
    [
        ("human rights", "On rights", "the rights of every human being", "R"),
        ("machine learning", "Machine learning is great", "", "P"),
        ("neural networks", "", "a neural network model", "P"),  # stemming: networks ~ network
        ("deep learning", "learning to rank", "", "M"),
        ("quantum chemistry", "learning to rank", "", "U"),
        ("", "anything", "", "U"),
    ],
)
def test_prmu_classes(phrase, title, text, expected):
    assert prmu_class(phrase, title, text) == expected


def test_strict_prmu_does_not_cross_punctuation_or_title_boundary():
    text = "We study learning. Rate limits matter."
    assert prmu_class("learning rate", "", text) == "P"
    assert prmu_class("learning rate", "", text, strict=True) == "R"
    assert prmu_class("neural networks", "Graph neural", "networks for chemistry") == "P"
    assert prmu_class("neural networks", "Graph neural", "networks for chemistry", strict=True) == "R"
    # within a clause strict mode still finds the match
    assert prmu_class("rate limits", "", text, strict=True) == "P"


def test_tokenize_keeps_compounds_and_splits_punctuation_and_clitics():
    assert tokenize("State-of-the-art models' F1 is 3.5 (approx.), isn't it? C++ and a/b cost 1,200.") == [
        "State-of-the-art", "models", "'", "F1", "is", "3.5", "(", "approx", ".", ")", ",", "isn", "'t", "it", "?",
        "C++", "and", "a/b", "cost", "1,200", "."]


def test_regex_tokenizer_agrees_with_nltk_on_ordinary_text():
    from nltk.tokenize import word_tokenize

    from esrank.corpus import read_documents, sample_corpus_path
    from esrank.text import is_word

    agree = total = 0
    for doc in read_documents(sample_corpus_path()):
        ours = [t.lower() for t in tokenize(doc.full_text) if is_word(t)]
        # nltk's line mode splits only the final period of a string: give it one sentence at a time
        sentences = re.split(r"(?<=[.!?])\s+", doc.full_text)
        theirs = [t.lower() for s in sentences for t in word_tokenize(s, preserve_line=True) if is_word(t)]
        total += 1
        agree += ours == theirs
    # Differences are limited to clitics (n't vs 't) and sentence-final abbreviations.
    assert total >= 60 and agree / total >= 0.8


def test_stemmed_key_and_dedupe():
    assert stemmed_key("Neural Networks") == stemmed_key("neural network") == "neural network"
    assert stemmed_key("  ,  ") == ""
    assert dedupe_phrases([" Deep  learning ", "deep learning", "", "Deep Learning", "BM25"]) == ["Deep learning", "BM25"]


def test_prepare_is_reusable():
    doc = prepare("Alpha beta", "gamma")
    assert doc.classify(stemmed_key("beta gamma")) == "P"
    assert doc.classify(stemmed_key("gamma alpha")) == "R"
