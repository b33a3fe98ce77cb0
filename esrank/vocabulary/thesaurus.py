"""Controlled vocabularies: descriptors, qualifiers, hierarchy, allowed pairs and local rules.

The JSON format is documented in ``docs/vocabulary.md``. Loading validates every entry and
raises ``InputError`` naming the file, the entry and the problem.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..errors import InputError
from ..text import dedupe_phrases, normalise_phrase

SLOT = "{D}"


@dataclass
class Descriptor:
    """A main heading: id, preferred label, synonyms, variants, broader links and the check-tag flag."""

    id: str
    label: str
    synonyms: list[str] = field(default_factory=list)
    broader: list[str] = field(default_factory=list)
    check_tag: bool = False
    allowed_qualifiers: list[str] = field(default_factory=list)  # inherited by the whole subtree
    variants: list[str] = field(default_factory=list)  # derived forms to match ("diagnostiquer"), never shown


@dataclass
class Qualifier:
    """A subheading (e.g. "therapy") that refines a descriptor."""

    id: str
    label: str
    synonyms: list[str] = field(default_factory=list)
    variants: list[str] = field(default_factory=list)  # derived forms to match ("treated", "diagnosed")


@dataclass
class Rule:
    """A local rule: a phrase pattern around a descriptor slot that yields a qualifier ("screening of {D}")."""

    pattern: str
    qualifier: str

    @property
    def before(self) -> str:
        """The words before the slot."""
        return self.pattern.split(SLOT, 1)[0].strip()

    @property
    def after(self) -> str:
        """The words after the slot."""
        return self.pattern.split(SLOT, 1)[1].strip()


@dataclass
class Thesaurus:
    """A validated controlled vocabulary."""

    descriptors: dict[str, Descriptor]
    qualifiers: dict[str, Qualifier] = field(default_factory=dict)
    allowed_pairs: set[tuple[str, str]] = field(default_factory=set)
    rules: list[Rule] = field(default_factory=list)
    language: str = "en"
    name: str = ""

    def __post_init__(self) -> None:
        self.narrower: dict[str, list[str]] = {d: [] for d in self.descriptors}
        for d in self.descriptors.values():
            for b in d.broader:
                self.narrower[b].append(d.id)
        self._depth: dict[str, int] = {}
        self._subtree_q: dict[str, frozenset[str]] = {}
        self._ancestors: dict[str, frozenset[str]] = {}
        self.pairs_declared = bool(self.allowed_pairs) or any(d.allowed_qualifiers for d in self.descriptors.values())

    def depth(self, did: str) -> int:
        """Length of the longest broader chain above a descriptor (a top descriptor has depth 0)."""
        got = self._depth.get(did)
        if got is None:
            parents = self.descriptors[did].broader
            got = 1 + max(self.depth(p) for p in parents) if parents else 0
            self._depth[did] = got
        return got

    def ancestors(self, did: str) -> frozenset[str]:
        """All descriptors above one (broader, transitively; cached)."""
        got = self._ancestors.get(did)
        if got is None:
            acc: set[str] = set()
            for p in self.descriptors[did].broader:
                acc.add(p)
                acc |= self.ancestors(p)
            got = self._ancestors[did] = frozenset(acc)
        return got

    def descendants(self, did: str) -> set[str]:
        """All descriptors below one (narrower, transitively)."""
        out: set[str] = set()
        stack = list(self.narrower.get(did, ()))
        while stack:
            c = stack.pop()
            if c not in out:
                out.add(c)
                stack.extend(self.narrower.get(c, ()))
        return out

    def subtree_qualifiers(self, did: str) -> frozenset[str]:
        """Qualifiers allowed on a descriptor through its own or an ancestor's ``allowed_qualifiers``."""
        got = self._subtree_q.get(did)
        if got is None:
            d = self.descriptors[did]
            acc = set(d.allowed_qualifiers)
            for p in d.broader:
                acc |= self.subtree_qualifiers(p)
            got = self._subtree_q[did] = frozenset(acc)
        return got

    def pair_allowed(self, did: str, qid: str) -> bool:
        """Whether descriptor/qualifier is a valid pair (every pair is valid when none are declared)."""
        if not self.pairs_declared:
            return did in self.descriptors and qid in self.qualifiers
        return (did, qid) in self.allowed_pairs or qid in self.subtree_qualifiers(did)

    def to_json(self) -> dict[str, Any]:
        """The thesaurus in the documented JSON format."""
        descs = []
        for d in self.descriptors.values():
            e: dict[str, Any] = {"id": d.id, "label": d.label}
            if d.synonyms:
                e["synonyms"] = d.synonyms
            if d.broader:
                e["broader"] = d.broader
            if d.check_tag:
                e["check_tag"] = True
            if d.allowed_qualifiers:
                e["allowed_qualifiers"] = d.allowed_qualifiers
            if d.variants:
                e["variants"] = d.variants
            descs.append(e)
        quals = [{"id": q.id, "label": q.label, "synonyms": q.synonyms, **({"variants": q.variants} if q.variants else {})}
                 for q in self.qualifiers.values()]
        return {
            "name": self.name, "language": self.language, "descriptors": descs,
            "qualifiers": quals,
            "allowed_pairs": sorted([list(p) for p in self.allowed_pairs]),
            "rules": [{"pattern": r.pattern, "qualifier": r.qualifier} for r in self.rules],
        }


class _Problem(Exception):
    pass


def _strings(entry: dict[str, Any], key: str, where: str) -> list[str]:
    value = entry.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Problem(f"{where}: '{key}' must be a list of strings")
    return value


def _entry_head(entry: Any, where: str) -> tuple[str, str]:
    if not isinstance(entry, dict):
        raise _Problem(f"{where}: must be an object, got {type(entry).__name__}")
    eid, label = entry.get("id"), entry.get("label")
    if not isinstance(eid, str) or not eid.strip():
        raise _Problem(f"{where}: missing or empty 'id'")
    if not isinstance(label, str) or not normalise_phrase(label):
        raise _Problem(f"{where} (id {eid!r}): missing or empty 'label'")
    return eid.strip(), normalise_phrase(label)


def _list(data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise _Problem(f"'{key}' must be a list")
    return value


def _check_cycles(descriptors: dict[str, Descriptor]) -> None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for root in descriptors:
        if state.get(root):
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        while stack:
            did, i = stack.pop()
            if i == 0:
                state[did] = 1
            parents = descriptors[did].broader
            if i < len(parents):
                stack.append((did, i + 1))
                p = parents[i]
                if state.get(p) == 1:
                    raise _Problem(f"descriptor {did!r}: broader link to {p!r} makes a cycle")
                if not state.get(p):
                    stack.append((p, 0))
            else:
                state[did] = 2


def thesaurus_from_dict(data: Any) -> Thesaurus:
    """Validate a parsed JSON thesaurus (raises ``InputError`` naming the bad entry)."""
    try:
        return _build(data)
    except _Problem as e:
        raise InputError(str(e)) from None


def _build(data: Any) -> Thesaurus:
    if not isinstance(data, dict):
        raise _Problem("a thesaurus must be a JSON object with a 'descriptors' list")
    if not isinstance(data.get("descriptors"), list) or not data["descriptors"]:
        raise _Problem("'descriptors' must be a non-empty list")
    language = data.get("language", "en")
    if not isinstance(language, str):
        raise _Problem("'language' must be a string such as 'en' or 'fr'")
    qualifiers: dict[str, Qualifier] = {}
    for i, e in enumerate(_list(data, "qualifiers")):
        where = f"qualifiers[{i}]"
        qid, label = _entry_head(e, where)
        if qid in qualifiers:
            raise _Problem(f"{where}: duplicate qualifier id {qid!r}")
        qualifiers[qid] = Qualifier(qid, label, dedupe_phrases(_strings(e, "synonyms", where)),
                                    dedupe_phrases(_strings(e, "variants", where)))
    descriptors: dict[str, Descriptor] = {}
    narrower_links: list[tuple[str, str, str]] = []
    for i, e in enumerate(data["descriptors"]):
        where = f"descriptors[{i}]"
        did, label = _entry_head(e, where)
        where = f"{where} (id {did!r})"
        if did in descriptors:
            raise _Problem(f"{where}: duplicate descriptor id")
        if did in qualifiers:
            raise _Problem(f"{where}: id is also a qualifier id")
        check = e.get("check_tag", False)
        if not isinstance(check, bool):
            raise _Problem(f"{where}: 'check_tag' must be true or false")
        allowed = _strings(e, "allowed_qualifiers", where)
        for q in allowed:
            if q not in qualifiers:
                raise _Problem(f"{where}: allowed qualifier {q!r} is not a qualifier id")
        descriptors[did] = Descriptor(did, label, dedupe_phrases(_strings(e, "synonyms", where)),
                                      list(dict.fromkeys(_strings(e, "broader", where))), check, allowed,
                                      dedupe_phrases(_strings(e, "variants", where)))
        narrower_links += [(did, n, where) for n in _strings(e, "narrower", where)]
    for d in descriptors.values():
        for b in d.broader:
            if b not in descriptors:
                raise _Problem(f"descriptor {d.id!r}: broader {b!r} is not a descriptor id")
            if b == d.id:
                raise _Problem(f"descriptor {d.id!r}: is its own broader descriptor")
    for parent, child, where in narrower_links:
        if child not in descriptors:
            raise _Problem(f"{where}: narrower {child!r} is not a descriptor id")
        if parent not in descriptors[child].broader:
            descriptors[child].broader.append(parent)
    _check_cycles(descriptors)
    pairs: set[tuple[str, str]] = set()
    for i, p in enumerate(_list(data, "allowed_pairs")):
        if not (isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p)):
            raise _Problem(f"allowed_pairs[{i}]: must be a [descriptor id, qualifier id] pair")
        if p[0] not in descriptors:
            raise _Problem(f"allowed_pairs[{i}]: {p[0]!r} is not a descriptor id")
        if p[1] not in qualifiers:
            raise _Problem(f"allowed_pairs[{i}]: {p[1]!r} is not a qualifier id")
        pairs.add((p[0], p[1]))
    rules: list[Rule] = []
    for i, r in enumerate(_list(data, "rules")):
        where = f"rules[{i}]"
        if not isinstance(r, dict) or not isinstance(r.get("pattern"), str) or not isinstance(r.get("qualifier"), str):
            raise _Problem(f"{where}: needs a 'pattern' string and a 'qualifier' id")
        if r["pattern"].count(SLOT) != 1:
            raise _Problem(f"{where}: pattern {r['pattern']!r} must hold the slot {SLOT} exactly once")
        if r["qualifier"] not in qualifiers:
            raise _Problem(f"{where}: {r['qualifier']!r} is not a qualifier id")
        rule = Rule(normalise_phrase(r["pattern"]), r["qualifier"])
        if not rule.before and not rule.after:
            raise _Problem(f"{where}: pattern has no words around {SLOT}")
        rules.append(rule)
    name = data.get("name", "")
    return Thesaurus(descriptors, qualifiers, pairs, rules, language, name if isinstance(name, str) else "")


def load_thesaurus(path: str | Path, language: str | None = None) -> Thesaurus:
    """Read and validate a JSON thesaurus file (RDF files, ``.ttl``, ``.rdf``, ..., are read as SKOS by rdflib)."""
    from .skos import RDF_FORMATS

    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", source=str(path))
    if path.suffix.lower() in RDF_FORMATS:
        from .normalise import language_code
        from .skos import read_skos

        return read_skos(path, language_code(language) if language else None)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise InputError(f"invalid UTF-8 at byte {e.start}", source=str(path)) from None
    except json.JSONDecodeError as e:
        raise InputError(f"malformed JSON: {e.msg} (column {e.colno})", source=str(path), line=e.lineno) from None
    try:
        th = _build(data)
    except _Problem as e:
        raise InputError(str(e), source=str(path)) from None
    if language:
        th.language = language
    return th


def thesaurus_from_keyphrases(keyphrase_lists: Iterable[Iterable[str]], *, language: str = "en",
                              min_count: int = 1) -> Thesaurus:
    """A flat vocabulary from keyphrases: one descriptor per stemmed form, its spellings as synonyms."""
    from .normalise import Normaliser

    normaliser = Normaliser(language)
    spellings: dict[str, Counter[str]] = {}
    for kps in keyphrase_lists:
        for kp in kps:
            kp = normalise_phrase(kp)
            key = " ".join(normaliser.phrase(kp))
            if key:
                spellings.setdefault(key, Counter())[kp] += 1
    descriptors: dict[str, Descriptor] = {}
    for i, key in enumerate(sorted(spellings)):
        counts = spellings[key]
        if sum(counts.values()) < min_count:
            continue
        ranked = [s for s, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
        did = f"K{i + 1}"
        descriptors[did] = Descriptor(did, ranked[0], dedupe_phrases(ranked[1:]))
    if not descriptors:
        raise InputError("no keyphrases to build a vocabulary from")
    return Thesaurus(descriptors, language=language, name="keyphrases")
