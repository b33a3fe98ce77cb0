"""SKOS vocabularies read with rdflib: concepts, preferred/alternative/hidden labels, broader/narrower links.

Any RDF serialisation rdflib reads is accepted (Turtle, N-Triples, RDF/XML, JSON-LD, ...; chosen by the file
extension), with everything RDF allows: blank nodes, collections, ``\\u`` escapes, ``@base``. Triples other
than the SKOS ones below are ignored.
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from ..errors import InputError
from .normalise import LANGUAGES
from .thesaurus import Thesaurus, thesaurus_from_dict

SKOS = "http://www.w3.org/2004/02/skos/core#"

#: File extensions read as SKOS, and the rdflib parser of each.
RDF_FORMATS = {".ttl": "turtle", ".n3": "n3", ".nt": "nt", ".rdf": "xml", ".owl": "xml", ".xml": "xml",
               ".jsonld": "json-ld", ".trig": "trig"}


def _graph(path: Path) -> Any:
    import rdflib
    from rdflib.plugins.parsers.notation3 import BadSyntax

    fmt = RDF_FORMATS.get(path.suffix.lower(), "turtle")
    graph = rdflib.Graph()
    try:
        graph.parse(str(path), format=fmt)
    except BadSyntax as e:
        why = getattr(e, "_why", "") or str(e).splitlines()[0]
        raise InputError(f"not valid {fmt}: {why}", source=str(path), line=int(getattr(e, "lines", 0)) + 1) from None
    except UnicodeDecodeError as e:
        raise InputError(f"invalid UTF-8 at byte {e.start}", source=str(path)) from None
    except Exception as e:  # rdflib's other parsers raise their own errors (SAX, JSON, ...)
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise InputError(f"not valid {fmt}: {first}", source=str(path)) from None
    return graph


def read_skos(path: str | Path, language: str | None = None) -> Thesaurus:
    """Read a SKOS file into a thesaurus (skos:Concept → descriptor; labels in ``language`` or untagged).

    ``skos:prefLabel`` gives the label, ``skos:altLabel`` the synonyms, ``skos:hiddenLabel`` the variants
    (matched, never shown). Without a language, the most frequent language tag of the preferred labels is
    taken (else English).
    """
    from rdflib import BNode, Literal, URIRef
    from rdflib.namespace import RDF

    path = Path(path)
    source = str(path)
    graph = _graph(path)
    skos = {name: URIRef(SKOS + name) for name in ("Concept", "prefLabel", "altLabel", "hiddenLabel", "broader",
                                                   "narrower")}
    concepts = list(dict.fromkeys(graph.subjects(RDF.type, skos["Concept"])))
    if not concepts:
        raise InputError("no skos:Concept in the file", source=source)

    def labels_of(c: Any, name: str) -> list[tuple[str, str]]:
        return [(str(o), (o.language or "").lower()) for o in graph.objects(c, skos[name]) if isinstance(o, Literal)]

    if language is None:
        tags = Counter(lang.split("-")[0] for c in concepts for _, lang in labels_of(c, "prefLabel") if lang)
        language = "en"
        for tag, _ in tags.most_common():
            if tag in LANGUAGES:
                language = tag
                break

    def name_of(c: Any) -> str:
        if isinstance(c, BNode):
            return f"_:{c}"
        return re.split(r"[#/]", str(c))[-1] or str(c)

    local = {c: name_of(c) for c in concepts}
    if len(set(local.values())) < len(local):
        local = {c: (f"_:{c}" if isinstance(c, BNode) else str(c)) for c in concepts}

    def labels(c: Any, name: str, any_language: bool = False) -> list[str]:
        values = sorted(labels_of(c, name))  # a graph has no order: sort for a stable label choice
        mine = [t for t, lang in values if lang.split("-")[0] == language or not lang]
        return mine or ([t for t, _ in values] if any_language else [])

    def links(c: Any, name: str) -> list[str]:
        return sorted(local.get(o, name_of(o)) for o in graph.objects(c, skos[name]) if isinstance(o, (URIRef, BNode)))

    descriptors = []
    for c in concepts:
        pref = labels(c, "prefLabel", any_language=True)
        if not pref:
            raise InputError(f"concept <{c}> has no skos:prefLabel", source=source)
        descriptors.append({"id": local[c], "label": pref[0], "synonyms": labels(c, "altLabel") + pref[1:],
                            "variants": labels(c, "hiddenLabel"), "broader": links(c, "broader"),
                            "narrower": links(c, "narrower")})
    try:
        return thesaurus_from_dict({"language": language, "name": path.stem, "descriptors": descriptors})
    except InputError as e:
        raise InputError(e.reason, source=source) from None
