"""Evaluation speed: PRMU classification + all metrics, documents per second (target ≥ 6,000 docs/s).

Run: python3 bench/bench_evaluation.py [--docs 20000]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import machine_facts, synthetic_corpus, timed  # noqa: E402

from esrank.evaluation.prmu import evaluate  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--docs", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    docs = synthetic_corpus(args.docs)
    # a system predicting 10 phrases per document: its gold keyphrases shuffled among distractors
    preds = {d.id: [d.keyphrases[0], "x y", d.keyphrases[3], d.text.split()[5] + " " + d.text.split()[6],
                    "z", d.keyphrases[1], "a b c", d.title.split()[0], d.keyphrases[2], "q"] for d in docs}
    evaluate(docs[:2000], {"s": preds})  # warm the stem cache as a long evaluation would
    import time

    cpu0 = time.process_time()
    mn, med = timed(lambda: evaluate(docs, {"s": preds}), args.repeats)
    cpu = (time.process_time() - cpu0) / args.repeats
    print(f"machine: {machine_facts()}")
    print(f"evaluation of {args.docs} documents (~180 words, 5 gold, 10 predictions), {args.repeats} runs:")
    print(f"  docs/s (wall): best {args.docs / mn:,.0f}, median {args.docs / med:,.0f}")
    print(f"  docs/s (process CPU time, mean of runs): {args.docs / cpu:,.0f}")


if __name__ == "__main__":
    main()
