"""Shared helpers of the benchmarks: synthetic kp20k-like corpora and machine facts."""
from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Callable

import numpy as np

from esrank.corpus import Document


def machine_facts() -> str:
    """One line: CPU model, cores, Python, date."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}"


def machine_line() -> str:
    """The Markdown report's machine line: ``machine_facts`` and the load average at the end of the run."""
    load = os.getloadavg()
    return f"Machine: {machine_facts()}; load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at the end."


def synthetic_corpus(n: int, *, words: int = 180, keyphrases: int = 5, vocab: int = 30_000,
                     seed: int = 0) -> list[Document]:
    """Documents of ~`words` Zipf-distributed words, each with keyphrases half present, half absent."""
    rng = np.random.default_rng(seed)
    lexicon = [f"w{i}" + "".join(chr(97 + (i * 7 + j) % 26) for j in range(3)) for i in range(vocab)]
    ranks = np.minimum(rng.zipf(1.2, size=(n, words)), vocab) - 1
    docs = []
    for i in range(n):
        toks = [lexicon[r] for r in ranks[i]]
        kps = []
        for j in range(keyphrases):
            if j % 2 == 0:
                s = int(rng.integers(0, words - 2))
                kps.append(" ".join(toks[s:s + 2]))
            else:
                kps.append(" ".join(lexicon[int(x)] for x in rng.integers(0, vocab, size=2)))
        docs.append(Document(str(i), " ".join(toks[:10]), " ".join(toks[10:]), kps))
    return docs


def timed(fn: Callable[[], object], repeats: int = 5) -> tuple[float, float]:
    """Min and median wall time of `repeats` calls."""
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts), statistics.median(ts)
