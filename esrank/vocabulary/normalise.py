"""Language-aware normalisation of text into word tokens for thesaurus matching.

A token is lowercased, stemmed (English: esrank's Porter stemmer; other languages: nltk's
Snowball stemmer) and accent-folded, so "sujets âgés", "sujet âgé" and "SUJETS AGES" all give
``sujet age``. Hyphenated compounds are split ("type-1" → ``type 1``), English clitics ("'s") and
French elisions ("l'", "d'") are dropped, and clause punctuation breaks a match.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from ..errors import ConfigError
from ..text import SEPARATORS, fold_accents, is_word, stem, tokenize

LANGUAGES = {
    "en": "english", "fr": "french", "de": "german", "es": "spanish", "it": "italian", "pt": "portuguese",
    "nl": "dutch", "sv": "swedish", "da": "danish", "no": "norwegian", "fi": "finnish", "ro": "romanian",
    "hu": "hungarian", "ru": "russian",
}
_FR_ELISION = re.compile(r"(?i)\b(?:qu|jusqu|lorsqu|puisqu|[cdjlmnst])'(?=\w)")
_SENTENCE_END = frozenset(".!?")


@dataclass(slots=True)
class Token:
    """A normalised word token: its form, character span and sentence number within its field."""

    norm: str
    start: int
    end: int
    sentence: int
    brk: bool = False  # True when clause punctuation precedes it (a match may not span it)


def language_code(language: str) -> str:
    """The two-letter code of a supported language ("french" → "fr"); raises ConfigError otherwise."""
    lang = language.strip().lower()
    if lang in LANGUAGES:
        return lang
    for code, name in LANGUAGES.items():
        if name == lang:
            return code
    raise ConfigError(f"unsupported language {language!r}; use one of {', '.join(sorted(LANGUAGES))}")


class Normaliser:
    """Turns text into normalised word tokens for one language (stems are cached)."""

    def __init__(self, language: str = "en") -> None:
        self.language = language_code(language)
        self._cache: dict[str, str] = {}
        if self.language == "en":
            self._stem: Callable[[str], str] = lambda w: fold_accents(stem(fold_accents(w)))
        else:
            from nltk.stem.snowball import SnowballStemmer

            snow = SnowballStemmer(LANGUAGES[self.language])
            self._stem = lambda w: fold_accents(snow.stem(w))

    def word(self, token: str) -> str:
        """The normalised form of one word."""
        got = self._cache.get(token)
        if got is None:
            got = self._stem(token.lower())
            if len(self._cache) < 1_000_000:
                self._cache[token] = got
        return got

    def tokens(self, text: str) -> list[Token]:
        """Normalised word tokens of a text with character spans, sentence numbers and breaks."""
        text = text.replace("\u2019", "'")
        if self.language == "fr":
            text = _FR_ELISION.sub(lambda m: " " * len(m.group()), text)
        out: list[Token] = []
        pos, sentence, brk = 0, 0, False
        cache, word, english = self._cache, self.word, self.language == "en"
        for tok in tokenize(text):
            at = text.find(tok, pos)
            if at < 0:  # a tokeniser that rewrites tokens (nltk quotes): keep going without spans
                at = pos
            pos = at + len(tok)
            first = tok[0]
            if not (first.isalnum() or first == "_" or is_word(tok)):
                if tok in _SENTENCE_END:
                    if out and out[-1].sentence == sentence:
                        sentence += 1
                    brk = True
                elif tok in SEPARATORS:
                    brk = True
                continue
            if first == "'":
                if english:
                    continue  # clitic: "Alzheimer's disease" = "Alzheimer disease"
                tok, at = tok[1:], at + 1
            # nltk's line-mode tokeniser leaves a sentence's final period on the last word ("treated.")
            period = len(tok) > 1 and tok[-1] == "." and tok[-2] != "."
            if period:
                tok = tok[:-1]
            if "-" not in tok:
                norm = cache.get(tok) or word(tok)
                out.append(Token(norm, at, at + len(tok), sentence, brk))
                brk = False
            else:
                offset = at
                for part in tok.split("-"):
                    if part:
                        out.append(Token(word(part), offset, offset + len(part), sentence, brk))
                        brk = False
                    offset += len(part) + 1
            if period:
                sentence, brk = sentence + 1, True
        return out

    def phrase(self, text: str) -> tuple[str, ...]:
        """The normalised word sequence of a label or pattern."""
        return tuple(t.norm for t in self.tokens(text))
