"""One Aho–Corasick automaton over normalised token sequences, and the ``Matcher`` built on it.

Every label and synonym of a thesaurus is one path in a token trie; failure links make the scan
of a document a single left-to-right pass whose cost depends on the text length, not on the
number of entries. Of overlapping matches the longest wins (the leftmost among equally long ones).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Hashable, Iterable, Sequence, cast

from ..corpus import Document
from .normalise import Normaliser, Token
from .thesaurus import Thesaurus


class Automaton:
    """An Aho–Corasick automaton whose alphabet is normalised words; each entry carries payloads."""

    def __init__(self, entries: Iterable[tuple[Sequence[str], Hashable]]) -> None:
        self.vocab: dict[str, int] = {}
        children: list[dict[int, int]] = [{}]
        payloads: list[list[Hashable]] = [[]]
        self.depth: list[int] = [0]
        self.n_entries = 0
        for words, payload in entries:
            if not words:
                continue
            node = 0
            for w in words:
                t = self.vocab.setdefault(w, len(self.vocab))
                nxt = children[node].get(t)
                if nxt is None:
                    nxt = len(children)
                    children[node][t] = nxt
                    children.append({})
                    payloads.append([])
                    self.depth.append(self.depth[node] + 1)
                node = nxt
            if payload not in payloads[node]:
                payloads[node].append(payload)
            self.n_entries += 1
        n = len(children)
        self.payloads: list[tuple[Hashable, ...]] = [tuple(p) for p in payloads]
        self.fail = [0] * n
        self.out_link = [0] * n  # nearest proper suffix node that ends an entry (0 = none)
        queue: deque[int] = deque(children[0].values())
        while queue:
            node = queue.popleft()
            for t, child in children[node].items():
                f = self.fail[node]
                while f and t not in children[f]:
                    f = self.fail[f]
                target = children[f].get(t, 0)
                self.fail[child] = target if target != child else 0
                fc = self.fail[child]
                self.out_link[child] = fc if self.payloads[fc] else self.out_link[fc]
                queue.append(child)
        self._stride = max(len(self.vocab), 1)
        self.goto: dict[int, int] = {}
        for node, ch in enumerate(children):
            for t, child in ch.items():
                self.goto[node * self._stride + t] = child
        # the full transition function, filled lazily: goto edges plus failure-link walks met in texts
        self._delta: dict[int, int] = dict(self.goto)
        self.delta_cap = len(self.goto) + 500_000
        # first node to report at each state: itself when it ends an entry, else its output link
        self._emit = [node if self.payloads[node] else self.out_link[node] for node in range(n)]
        # a word that no entry starts with leads from the root back to the root
        self._starts = frozenset(children[0])

    @property
    def n_nodes(self) -> int:
        """Number of trie nodes."""
        return len(self.fail)

    def scan(self, words: Sequence[str], breaks: Sequence[bool] | None = None) -> list[tuple[int, int, int]]:
        """All entry occurrences as (start, end-exclusive, node); a break before a word resets the state."""
        vocab, goto, delta, fail, stride = self.vocab, self.goto, self._delta, self.fail, self._stride
        emit, out_link, depth, starts = self._emit, self.out_link, self.depth, self._starts
        found: list[tuple[int, int, int]] = []
        state = 0
        for i, w in enumerate(words):
            t = vocab.get(w)
            if t is None:
                state = 0
                continue
            if breaks is not None and breaks[i]:
                state = 0
            if not state:
                if t not in starts:
                    continue
                state = goto[t]
            else:
                key = state * stride + t
                nxt = delta.get(key)
                if nxt is None:  # walk the failure links once, remember the result
                    s = state
                    while nxt is None and s:
                        s = fail[s]
                        nxt = goto.get(s * stride + t)
                    nxt = nxt or 0
                    if len(delta) < self.delta_cap:
                        delta[key] = nxt
                state = nxt
            node = emit[state]
            while node:
                found.append((i + 1 - depth[node], i + 1, node))
                node = out_link[node]
        return found

    def longest(self, words: Sequence[str], breaks: Sequence[bool] | None = None) -> list[tuple[int, int, int]]:
        """Non-overlapping occurrences in text order: the longest wins an overlap, then the leftmost."""
        found = self.scan(words, breaks)
        if len(found) < 2:
            return found
        found.sort(key=lambda m: (m[0] - m[1], m[0]))
        taken = bytearray(len(words))
        kept: list[tuple[int, int, int]] = []
        for m in found:
            if not any(taken[m[0]:m[1]]):
                kept.append(m)
                taken[m[0]:m[1]] = b"\x01" * (m[1] - m[0])
        kept.sort()
        return kept


@dataclass(frozen=True, slots=True)
class Match:
    """One thesaurus match in a document: what matched, where (field, sentence, tokens, characters)."""

    kind: str  # "D" (descriptor) or "Q" (qualifier)
    concept: str
    field: str
    sentence: int  # numbered across the document's fields in order
    start: int  # token positions within the field
    end: int
    char_start: int
    char_end: int
    text: str


@dataclass
class FieldText:
    """The normalised tokens of one field of a document."""

    name: str
    text: str
    tokens: list[Token]
    first_sentence: int


class Matcher:
    """A thesaurus compiled for matching: normaliser + automaton over all labels and synonyms."""

    def __init__(self, thesaurus: Thesaurus, language: str | None = None) -> None:
        self.thesaurus = thesaurus
        self.normaliser = Normaliser(language or thesaurus.language)
        norm = self.normaliser.phrase
        entries: list[tuple[Sequence[str], Hashable]] = []
        for d in thesaurus.descriptors.values():
            entries += [(norm(s), ("D", d.id)) for s in [d.label, *d.synonyms, *d.variants]]
        for q in thesaurus.qualifiers.values():
            entries += [(norm(s), ("Q", q.id)) for s in [q.label, *q.synonyms, *q.variants]]
        self.automaton = Automaton(entries)
        self.rules = [(norm(r.before), norm(r.after), r.qualifier) for r in thesaurus.rules]

    def fields(self, document: Document, field_names: Sequence[str] = ("title", "text")) -> list[FieldText]:
        """Normalised tokens of the named fields ("title", "text" or a meta field holding text)."""
        out: list[FieldText] = []
        sentence = 0
        for name in field_names:
            if name == "title":
                value = document.title
            elif name == "text":
                value = document.text
            else:
                raw = document.meta.get(name)
                value = "\n".join(raw) if isinstance(raw, list) else raw if isinstance(raw, str) else ""
            if not value:
                continue
            toks = self.normaliser.tokens(value)
            out.append(FieldText(name, value, toks, sentence))
            if toks:
                sentence += toks[-1].sentence + 1
        return out

    def match_field(self, ft: FieldText) -> list[Match]:
        """Longest matches in one field, one ``Match`` per concept the matched words name."""
        words = [t.norm for t in ft.tokens]
        breaks = [t.brk for t in ft.tokens]
        out: list[Match] = []
        for start, end, node in self.automaton.longest(words, breaks):
            first, last = ft.tokens[start], ft.tokens[end - 1]
            for payload in self.automaton.payloads[node]:
                kind, cid = cast("tuple[str, str]", payload)
                out.append(Match(kind, cid, ft.name, ft.first_sentence + first.sentence, start, end,
                                 first.start, last.end, ft.text[first.start:last.end]))
        return out

    def match(self, document: Document, field_names: Sequence[str] = ("title", "text")) -> list[Match]:
        """All matches of a document, field by field in order."""
        out: list[Match] = []
        for ft in self.fields(document, field_names):
            out += self.match_field(ft)
        return out

    def rule_pairs(self, ft: FieldText, matches: Sequence[Match]) -> list[tuple[str, str, Match]]:
        """(descriptor, qualifier, match) for each descriptor match framed by a local rule's words."""
        words = [t.norm for t in ft.tokens]
        out: list[tuple[str, str, Match]] = []
        for m in matches:
            if m.kind != "D" or m.field != ft.name:
                continue
            for before, after, qid in self.rules:
                if before and tuple(words[max(0, m.start - len(before)):m.start]) != before:
                    continue
                if after and tuple(words[m.end:m.end + len(after)]) != after:
                    continue
                out.append((m.concept, qid, m))
        return out


def vocabulary_candidates(document: Document, matcher: Matcher) -> list[str]:
    """Preferred labels of the descriptors a document mentions (a candidate source for ranking)."""
    seen: dict[str, None] = {}
    for m in matcher.match(document):
        if m.kind == "D":
            seen.setdefault(matcher.thesaurus.descriptors[m.concept].label)
    return list(seen)
