"""The thesaurus as a candidate source for ranking (``esrank rank --candidates neighbours,vocabulary``)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..corpus import Document
from ..errors import ConfigError
from .automaton import Matcher, vocabulary_candidates
from .thesaurus import load_thesaurus

__all__ = ["candidate_source", "vocabulary_candidates"]


def candidate_source(thesaurus: str | Path | None, *, lang: str | None = None) -> Callable[[Document], list[str]]:
    """A function giving the preferred labels of the descriptors a document mentions.

    ``thesaurus`` is a thesaurus file, e.g. one built from an index's keyphrases with
    ``esrank vocab from-keyphrases``.
    """
    if thesaurus is None:
        raise ConfigError("vocabulary candidates need a thesaurus (--thesaurus FILE; "
                          "'esrank vocab from-keyphrases' builds one from a corpus's keyphrases)")
    matcher = Matcher(load_thesaurus(thesaurus, lang), lang)

    def source(document: Document) -> list[str]:
        return vocabulary_candidates(document, matcher)

    return source
