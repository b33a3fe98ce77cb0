"""Benchmark of the thesaurus indexer: matching time for 1k vs 100k entries on the same texts, and docs/s.

Synthetic but deterministic: a Zipf-distributed vocabulary of pseudo-words makes the texts, and the
thesaurus entries (1-4 words, with hierarchy, synonyms, qualifiers and allowed qualifiers) are drawn
from the same vocabulary, so a large dictionary has many partial paths through the texts. The 100k
thesaurus contains the 1k one. Timings are repeated; min and median are printed, and the 100k/1k ratio
is computed from figures measured in the same run. Times are CPU seconds of the benchmark process
(``time.process_time``), which a loaded shared machine disturbs much less than wall-clock time.

    python3 bench/bench_vocabulary.py [--docs 300] [--words 250] [--repeats 5]
    python3 bench/bench_vocabulary.py --hybrid [--data CORPUS] [--k 5] [--every 3]

``--hybrid`` instead measures the vocabulary as a candidate source for ranking: held-out documents,
neighbours from an embedded index of the others, a vocabulary built from the others' keyphrases, the
default encoder ranking the pools; candidate recall and F1 by present/absent keyphrases.
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
from esrank.text import stem
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
    """CPU seconds of this process per call: far less disturbed than wall time on a shared machine."""
    out = []
    for _ in range(repeats):
        t = time.process_time()
        fn()
        out.append(time.process_time() - t)
    return out


def hybrid(data: str | None, k: int, every: int) -> None:
    """Neighbour candidates vs neighbours + keyphrase-vocabulary candidates on held-out documents."""
    import tempfile

    from esrank.corpus import read_documents, sample_corpus_path
    from esrank.evaluation.prmu import evaluate
    from esrank.ranking.pipeline import RankSettings, rank_documents
    from esrank.ranking.ranker import Ranker
    from esrank.retrieval.embedded import EmbeddedBackend
    from esrank.text import prepare, stemmed_key
    from esrank.vocabulary.candidates import vocabulary_candidates
    from esrank.vocabulary.thesaurus import thesaurus_from_keyphrases

    docs = list(read_documents(data or sample_corpus_path()))
    test = [d for i, d in enumerate(docs) if i % every == 0]
    train = [d for i, d in enumerate(docs) if i % every != 0]
    matcher = Matcher(thesaurus_from_keyphrases(d.keyphrases for d in train))
    print(f"hybrid: {len(train)} training documents, {len(test)} held out, keyphrase vocabulary "
          f"{len(matcher.thesaurus.descriptors)} descriptors, k={k}")
    ranker = Ranker.load(device="cpu", threads=2)
    with tempfile.TemporaryDirectory() as tmp:
        backend = EmbeddedBackend("hybrid", tmp)
        backend.create(overwrite=True)
        backend.bulk_add(train)
        systems, pools_cover = {}, {}
        for name, sources in (("neighbours", ("neighbours",)), ("neighbours+vocabulary", ("neighbours", "vocabulary"))):
            settings = RankSettings(k=k, top_n=None, sources=sources)
            extra = (lambda d: vocabulary_candidates(d, matcher)) if "vocabulary" in sources else None
            preds = list(rank_documents(test, backend, ranker, settings, extra=extra))
            systems[name] = {p.id: p.phrases for p in preds}
            # candidate recall by PRMU class: which gold keyphrases are in the pool at all
            hit = {"present": [0, 0], "absent": [0, 0]}
            for d, p in zip(test, preds):
                st = prepare(d.title, d.text)
                pool = {stemmed_key(x) for x in p.phrases}
                for g in {stemmed_key(x) for x in d.keyphrases}:
                    scope = "present" if st.classify(g) == "P" else "absent"
                    hit[scope][0] += g in pool
                    hit[scope][1] += 1
            pools_cover[name] = (hit, sum(len(p.phrases) for p in preds) / len(preds))
        backend.close()
    ranker.close()
    result = evaluate(test, systems)
    for name in systems:
        hit, size = pools_cover[name]
        s = result.systems[name]
        figs = {m: s.mean(m)[0] for m in ("present_F1@5", "present_F1@10", "absent_R@10", "all_F1@10")}
        print(f"{name:>22}: pool {size:.1f} candidates; candidate recall present "
              f"{hit['present'][0]}/{hit['present'][1]}, absent {hit['absent'][0]}/{hit['absent'][1]}; "
              + ", ".join(f"{m} {v:.4f}" for m, v in figs.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=300)
    ap.add_argument("--words", type=int, default=250)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--hybrid", action="store_true",
                    help="Measure neighbour vs neighbour+vocabulary candidates with the default encoder instead.")
    ap.add_argument("--data", default=None, help="--hybrid: corpus with keyphrases (default: the sample corpus).")
    ap.add_argument("--k", type=int, default=5, help="--hybrid: neighbours per document.")
    ap.add_argument("--every", type=int, default=3, help="--hybrid: every n-th document is held out.")
    args = ap.parse_args()
    if args.hybrid:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        hybrid(args.data, args.k, args.every)
        return
    rng = random.Random(13)
    pool = pseudo_words(25000, rng)
    words, unseen = pool[::5], [w for i, w in enumerate(pool) if i % 5]
    docs = make_texts(words, args.docs, args.words, rng)
    big = make_thesaurus(100_000, words, unseen, random.Random(7))
    small = {**big, "descriptors": big["descriptors"][:1000]}
    mid = {**big, "descriptors": big["descriptors"][:10_000]}
    big_plus = make_thesaurus(100_000, words, unseen, random.Random(7), complete=0.05)
    n_tokens = sum(len(d.title.split()) + len(d.text.split()) for d in docs)

    print(f"texts: {len(docs)} documents, {n_tokens} word tokens")
    stem("warm-up")  # nltk's import is lazy: keep it out of the first build time
    matchers = {}
    for name, data in (("1k", small), ("10k", mid), ("100k", big), ("100k+", big_plus)):
        t = time.process_time()
        matchers[name] = Matcher(thesaurus_from_dict(data))
        a = matchers[name].automaton
        print(f"{name:>6}: {a.n_entries} entries, {a.n_nodes} nodes, built in {time.process_time() - t:.2f} CPU s")

    # pre-normalised token sequences: "matching" = the automaton pass alone
    fields = [ft for d in docs for ft in matchers["1k"].fields(d)]
    seqs = [([t.norm for t in ft.tokens], [t.brk for t in ft.tokens]) for ft in fields]
    steps = {}
    for name, m in matchers.items():
        idx = Indexer(m)
        steps[name] = {
            "scan": lambda a=m.automaton: [a.longest(w, b) for w, b in seqs],
            "match": lambda m=m: [m.match(d) for d in docs],
            "index": lambda idx=idx: [idx.index(d) for d in docs],
        }
        for fn in steps[name].values():
            fn()  # warm up (stem caches, lazily filled transitions)
    res: dict[str, dict[str, list[float]]] = {n: {s: [] for s in ("scan", "match", "index")} for n in matchers}
    for _ in range(args.repeats):  # interleaved, so that load changes hit every dictionary alike
        for name in matchers:
            for step, fn in steps[name].items():
                res[name][step] += timed(fn, 1)
    for name, m in matchers.items():
        scan, full, index = res[name]["scan"], res[name]["match"], res[name]["index"]
        n_matches = sum(len(m.match(d)) for d in docs)
        print(f"{name:>6}: matches {n_matches}; automaton pass min {min(scan) * 1e3:.1f} ms, "
              f"median {statistics.median(scan) * 1e3:.1f} ms; normalise+match min {min(full) * 1e3:.1f} ms; "
              f"full indexing {len(docs) / min(index):.0f} docs/s (median {len(docs) / statistics.median(index):.0f})")
    for big_name, base in (("100k", "1k"), ("100k+", "1k"), ("100k", "10k")):
        for step in ("scan", "match", "index"):
            r_min = min(res[big_name][step]) / min(res[base][step])
            r_med = statistics.median(res[big_name][step]) / statistics.median(res[base][step])
            print(f"ratio {big_name}/{base} {step:>5}: min {r_min:.2f}, median {r_med:.2f}")
    for name, m in matchers.items():
        known = sum(w in m.automaton.vocab for ws, _ in seqs for w in ws) / sum(len(ws) for ws, _ in seqs)
        print(f"{name:>6}: {known:.0%} of the text's words occur in some entry")
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
