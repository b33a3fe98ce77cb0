"""Benchmark of the thesaurus indexer: matching time for 1k vs 100k entries on the same texts, and docs/s.

Synthetic but deterministic: a Zipf-distributed vocabulary of pseudo-words makes the texts, and the
thesaurus entries (1-4 words, with hierarchy, synonyms, qualifiers and allowed qualifiers) are drawn
from the same vocabulary, so a large dictionary has many partial paths through the texts. The 100k
thesaurus contains the 1k one. Timings are repeated; min and median are printed, and the 100k/1k ratio
is computed from figures measured in the same run.

    python3 bench/bench_vocabulary.py [--docs 300] [--words 250] [--repeats 5]
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import time
from datetime import datetime, timezone

from esrank.corpus import Document
from esrank.vocabulary.automaton import Matcher
from esrank.vocabulary.indexer import Indexer
from esrank.vocabulary.thesaurus import thesaurus_from_dict

CONSONANTS, VOWELS = "bcdfghklmnprstvz", "aeiou"


def pseudo_words(n: int, rng: random.Random) -> list[str]:
    out: set[str] = set()
    while len(out) < n:
        syl = rng.randint(2, 4)
        out.add("".join(rng.choice(CONSONANTS) + rng.choice(VOWELS) for _ in range(syl)))
    return sorted(out)


def make_texts(words: list[str], n_docs: int, n_words: int, rng: random.Random) -> list[Document]:
    weights = [1.0 / (r + 1) for r in range(len(words))]  # Zipf
    docs = []
    for i in range(n_docs):
        toks = rng.choices(words, weights, k=n_words)
        sents = [" ".join(toks[j:j + 20]) for j in range(0, n_words, 20)]
        docs.append(Document(str(i), " ".join(toks[:8]), ". ".join(sents) + "."))
    return docs


def make_thesaurus(n_entries: int, words: list[str], unseen: list[str], rng: random.Random,
                   complete: float = 0.0) -> dict:
    """The first 1000 descriptors are drawn from the text vocabulary (they match); the others start with text
    words but (except a ``complete`` fraction) end with a word the texts never use: a big automaton with
    many partial paths through the texts and, with complete=0, the very same matches as the first 1000."""
    weights = [1.0 / (r + 1) ** 0.5 for r in range(len(words))]
    quals = [{"id": f"Q{i}", "label": w} for i, w in enumerate(words[200:220])]
    descs, seen = [], set()
    while len(descs) < n_entries:
        i = len(descs)
        k = rng.choice((1, 2, 2, 3, 3, 4))
        toks = rng.choices(words, weights, k=k)
        if i >= 1000 and rng.random() >= complete:
            toks[-1] = rng.choice(unseen)
        label = " ".join(toks)
        if label in seen:
            continue
        seen.add(label)
        d: dict = {"id": f"D{i}", "label": label}
        if i > 10 and rng.random() < 0.3:
            d["broader"] = [f"D{rng.randrange(i)}"]
        if rng.random() < 0.2:
            d["synonyms"] = [" ".join(reversed(toks))]
        if rng.random() < 0.1:
            d["allowed_qualifiers"] = [q["id"] for q in rng.sample(quals, 3)]
        if i < 5:
            d["check_tag"] = True
        descs.append(d)
    return {"language": "en", "descriptors": descs, "qualifiers": quals}


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=300)
    ap.add_argument("--words", type=int, default=250)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    rng = random.Random(13)
    pool = pseudo_words(25000, rng)
    words, unseen = pool[::5], [w for i, w in enumerate(pool) if i % 5]
    docs = make_texts(words, args.docs, args.words, rng)
    big = make_thesaurus(100_000, words, unseen, random.Random(7))
    small = {**big, "descriptors": big["descriptors"][:1000]}
    big_plus = make_thesaurus(100_000, words, unseen, random.Random(7), complete=0.05)
    n_tokens = sum(len(d.title.split()) + len(d.text.split()) for d in docs)

    print(f"texts: {len(docs)} documents, {n_tokens} word tokens")
    matchers = {}
    for name, data in (("1k", small), ("100k", big), ("100k+", big_plus)):
        t = time.perf_counter()
        matchers[name] = Matcher(thesaurus_from_dict(data))
        a = matchers[name].automaton
        print(f"{name:>6}: {a.n_entries} entries, {a.n_nodes} nodes, built in {time.perf_counter() - t:.2f} s")

    # pre-normalised token sequences: "matching" = the automaton pass alone
    fields = [ft for d in docs for ft in matchers["1k"].fields(d)]
    seqs = [([t.norm for t in ft.tokens], [t.brk for t in ft.tokens]) for ft in fields]
    res: dict[str, dict[str, list[float]]] = {}
    for name, m in matchers.items():
        a = m.automaton
        scan = timed(lambda: [a.longest(w, b) for w, b in seqs], args.repeats)
        full = timed(lambda: [m.match(d) for d in docs], args.repeats)
        idx = Indexer(m)
        index = timed(lambda: [idx.index(d) for d in docs], args.repeats)
        n_matches = sum(len(m.match(d)) for d in docs)
        res[name] = {"scan": scan, "match": full, "index": index}
        print(f"{name:>6}: matches {n_matches}; automaton pass min {min(scan) * 1e3:.1f} ms, "
              f"median {statistics.median(scan) * 1e3:.1f} ms; normalise+match min {min(full) * 1e3:.1f} ms; "
              f"full indexing {len(docs) / min(index):.0f} docs/s (median {len(docs) / statistics.median(index):.0f})")
    for big_name in ("100k", "100k+"):
        for step in ("scan", "match", "index"):
            r_min = min(res[big_name][step]) / min(res["1k"][step])
            r_med = statistics.median(res[big_name][step]) / statistics.median(res["1k"][step])
            print(f"ratio {big_name}/1k {step:>5}: min {r_min:.2f}, median {r_med:.2f}")
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"machine: {os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, "
          f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")


if __name__ == "__main__":
    main()
