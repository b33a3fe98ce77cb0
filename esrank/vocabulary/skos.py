"""A small SKOS reader for Turtle files: concepts, preferred/alternative labels and broader/narrower links.

Only the Turtle needed for SKOS vocabularies is read: ``@prefix``/``PREFIX``, IRIs, prefixed names,
``a``, string literals with language tags or datatypes, and ``;`` / ``,`` / ``.`` lists. Blank nodes
and collections are refused with a clear error.
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
RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
_TOKEN = re.compile(r'''
    (?P<ws>\s+|\#[^\n]*)
  | (?P<iri><[^>\s]*>)
  | (?P<lit>"""(?:[^"\\]|\\.|"(?!""))*"""|"(?:[^"\\\n]|\\.)*")(?:@(?P<lang>[A-Za-z-]+)|\^\^\S+?(?=[\s;,.]))?
  | (?P<kw>@prefix|PREFIX|@base|BASE)
  | (?P<pname>(?:[A-Za-z][\w-]*)?:(?:[\w-]+(?:\.[\w-]+)*)?)
  | (?P<a>a(?=\s))
  | (?P<punct>[;,.\[\]()])
''', re.VERBOSE)
_ESC = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "r": "\r"}


def _unescape(lit: str) -> str:
    body = lit[3:-3] if lit.startswith('"""') else lit[1:-1]
    return re.sub(r"\\(.)", lambda m: _ESC.get(m.group(1), m.group(1)), body)


def _tokens(text: str, source: str) -> list[tuple[str, Any, int]]:
    out: list[tuple[str, Any, int]] = []
    pos, line = 0, 1
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise InputError(f"cannot read Turtle near {text[pos:pos + 20]!r}", source=source, line=line)
        kind = m.lastgroup if m.lastgroup != "lang" else "lit"
        if m.group("lit") is not None:
            out.append(("lit", (_unescape(m.group("lit")), (m.group("lang") or "").lower()), line))
        elif kind != "ws":
            out.append((kind, m.group(kind), line))  # type: ignore[arg-type]
        line += m.group(0).count("\n")
        pos = m.end()
    return out


def read_skos(path: str | Path, language: str | None = None) -> Thesaurus:
    """Read a SKOS Turtle file into a thesaurus (skos:Concept → descriptor; labels in ``language`` or untagged).

    Without a language, the most frequent language tag of the preferred labels is taken (else English).
    """
    source = str(path)
    toks = _tokens(Path(path).read_text(encoding="utf-8"), source)
    prefixes: dict[str, str] = {}
    subjects: dict[str, dict[str, list[Any]]] = {}
    i = 0

    def term(k: int) -> tuple[str, Any]:
        kind, value, line = toks[k]
        if kind == "iri":
            return "iri", value[1:-1]
        if kind == "pname":
            prefix, _, local = value.partition(":")
            if prefix not in prefixes:
                raise InputError(f"unknown prefix {prefix!r}:", source=source, line=line)
            return "iri", prefixes[prefix] + local
        if kind == "a":
            return "iri", RDF_TYPE
        if kind == "lit":
            return "lit", value
        raise InputError(f"unexpected {value!r} (blank nodes and collections are not supported)",
                         source=source, line=line)

    try:
        while i < len(toks):
            kind, value, line = toks[i]
            if kind == "kw":
                if value.lower() in ("@base", "base"):
                    raise InputError("@base is not supported", source=source, line=line)
                prefixes[toks[i + 1][1].rstrip(":")] = toks[i + 2][1][1:-1]
                i += 4 if value == "@prefix" else 3
                continue
            _, subj = term(i)
            props = subjects.setdefault(subj, {})
            i += 1
            while True:
                _, pred = term(i)
                i += 1
                while True:
                    props.setdefault(pred, []).append(term(i)[1])
                    i += 1
                    if toks[i][1] != ",":
                        break
                    i += 1
                sep = toks[i][1]
                i += 1
                if sep == ".":
                    break
                if sep != ";":
                    raise InputError(f"expected ';' or '.', got {sep!r}", source=source, line=toks[i - 1][2])
                if toks[i][1] == ".":  # a trailing ';'
                    i += 1
                    break
    except IndexError:
        raise InputError("unexpected end of the Turtle file", source=source) from None

    concepts = {s: p for s, p in subjects.items() if SKOS + "Concept" in p.get(RDF_TYPE, [])}
    if not concepts:
        raise InputError("no skos:Concept in the file", source=source)
    if language is None:
        tags = Counter(lang.split("-")[0] for p in concepts.values() for v in p.get(SKOS + "prefLabel", [])
                       if isinstance(v, tuple) and (lang := v[1]))
        language = "en"
        for tag, _ in tags.most_common():
            if tag in LANGUAGES:
                language = tag
                break
    local = {s: re.split(r"[#/]", s)[-1] or s for s in concepts}
    if len(set(local.values())) < len(local):
        local = {s: s for s in concepts}

    def labels(props: dict[str, list[Any]], name: str, any_language: bool = False) -> list[str]:
        values = [v for v in props.get(SKOS + name, []) if isinstance(v, tuple)]
        mine = [t for t, lang in values if lang.split("-")[0] == language or not lang]
        return mine or ([t for t, _ in values] if any_language else [])

    descriptors = []
    for s, props in concepts.items():
        pref = labels(props, "prefLabel", any_language=True)
        if not pref:
            raise InputError(f"concept <{s}> has no skos:prefLabel", source=source)
        syn = labels(props, "altLabel") + labels(props, "hiddenLabel") + pref[1:]
        descriptors.append({"id": local[s], "label": pref[0], "synonyms": syn,
                            "broader": [local.get(b, b) for b in props.get(SKOS + "broader", []) if isinstance(b, str)],
                            "narrower": [local.get(n, n) for n in props.get(SKOS + "narrower", [])
                                         if isinstance(n, str)]})
    try:
        return thesaurus_from_dict({"language": language, "name": Path(path).stem, "descriptors": descriptors})
    except InputError as e:
        raise InputError(e.reason, source=source) from None
