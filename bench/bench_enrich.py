"""Enrichment benchmark: documents/s of ``esrank enrich`` with 1 and 2 workers on one machine.

    python3 bench/bench_enrich.py --url http://127.0.0.1:9200 [--docs 600] [--repeat 2] [--methods vote,model]
    python3 bench/bench_enrich.py --start-server            # a throw-away Elasticsearch node (tests/servers.py)

The training index holds the 90 sample documents; the target index holds ``--docs`` copies of them
(new ids). Each configuration enriches the whole target (``--force``, so nothing is skipped):
1 worker; 2 workers in one process (``--slices 2``, threads); 2 processes (``--slice-max 2``, one
command per slice, as two machines would run). The model is all-MiniLM-L6-v2 on the CPU with one torch
thread per worker. Configurations are interleaved per repeat. Two rates are printed (best = from the
shortest time, and median; ratio = of the medians to 1 worker, in the same run): the enrichment itself
(documents / seconds of the run's own summary line, the slowest process for two) and the whole command
(wall time, interpreter start-up and model loading included).
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import machine_facts  # noqa: E402
from esrank.corpus import Document, read_documents, sample_corpus_path  # noqa: E402
from esrank.enrich.scan import PointInTime  # noqa: E402
from esrank.retrieval.cluster import Cluster, ConnectionConfig  # noqa: E402
from esrank.retrieval.factory import BackendOptions, open_backend, resolve_kind  # noqa: E402

CONFIGS = {"1 worker": [], "2 workers (--slices 2)": ["--slices", "2"], "2 processes (--slice-max 2)": None}


def prepare(url: str, n: int) -> tuple[str, str]:
    """A training index of the sample and a target index of ``n`` copies of it."""
    kind = resolve_kind(BackendOptions.server("x", url))
    sample = list(read_documents(sample_corpus_path()))
    training = open_backend(BackendOptions.server("bench-enrich-kp", url, backend=kind), create=True, overwrite=True)
    training.bulk_add(sample)
    training.close()
    target = open_backend(BackendOptions.server("bench-enrich-docs", url, backend=kind), create=True, overwrite=True)
    copies = (Document(f"{d.id}-{i}", d.title, d.text) for i in range(n // len(sample) + 1) for d in sample)
    target.bulk_add(c for j, c in enumerate(copies) if j < n)
    target.close()
    return "bench-enrich-kp", "bench-enrich-docs"


def command(url: str, training: str, target: str, method: str, extra: list[str]) -> list[str]:
    """The enrich command line of one configuration."""
    return [sys.executable, str(ROOT / "cli.py"), "--quiet", "enrich", "--url", url, "--index", training,
            "--target-index", target, "--text-fields", "title,text", "--method", method, "--threads", "1",
            "--device", "cpu", "--force", "--no-carbon", *extra]


def _enrich_seconds(stderr: bytes) -> tuple[int, float]:
    """(documents seen, seconds) from a command's summary line (model loading and start-up excluded)."""
    m = re.search(r"seen (\d+), .*?; ([\d.]+)s, [\d.]+ docs/s", stderr.decode())
    if m is None:
        raise SystemExit(stderr.decode())
    return int(m.group(1)), float(m.group(2))


def run(url: str, training: str, target: str, method: str, name: str, n: int) -> tuple[float, float]:
    """(wall docs/s of the command(s), docs/s of the enrichment itself) of one configuration."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    extra = CONFIGS[name]
    t = time.perf_counter()
    if extra is None:  # two "machines" sharing one point in time, as docs/enrich.md describes
        conn = Cluster.connect(ConnectionConfig(url))
        with PointInTime(conn, target, "10m") as pit:
            procs = [subprocess.Popen(command(url, training, target, method, [
                "--slice-max", "2", "--slice-id", str(i), "--pit-id", str(pit.id)]),
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for i in range(2)]
            parts = []
            for p in procs:
                _, err = p.communicate()
                if p.returncode:
                    raise SystemExit(err.decode())
                parts.append(_enrich_seconds(err))
        conn.close()
    else:
        p = subprocess.run(command(url, training, target, method, extra), env=env, capture_output=True)
        if p.returncode:
            raise SystemExit(p.stderr.decode())
        parts = [_enrich_seconds(p.stderr)]
    wall = time.perf_counter() - t
    seen = sum(x for x, _ in parts)
    if seen != n:
        raise SystemExit(f"{name}: {seen} documents seen, expected {n}")
    return n / wall, n / max(s for _, s in parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", default=os.environ.get("ESRANK_URL"))
    ap.add_argument("--start-server", action="store_true", help="Start a throw-away Elasticsearch node.")
    ap.add_argument("--docs", type=int, default=600)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--methods", default="vote,model")
    args = ap.parse_args()
    server = None
    if args.start_server:
        sys.path.insert(0, str(ROOT / "tests"))
        from servers import ELASTICSEARCH, Server

        server = Server(ELASTICSEARCH).start()
        args.url = server.url
    if not args.url:
        raise SystemExit("give --url (or ESRANK_URL) or --start-server")
    try:
        conn = Cluster.connect(ConnectionConfig(args.url))
        training, target = prepare(args.url, args.docs)
        print(f"{machine_facts()}; {conn.kind} {conn.version}; {args.docs} target documents, k=5, top-n 10")
        print("\n| method | workers | enrichment docs/s best | median | ratio | command docs/s best | median | ratio |"
              "\n|---|---|---:|---:|---:|---:|---:|---:|")
        for method in args.methods.split(","):
            rates: dict[str, list[tuple[float, float]]] = {name: [] for name in CONFIGS}
            for _ in range(args.repeat):
                for name in CONFIGS:
                    rates[name].append(run(args.url, training, target, method, name, args.docs))
            base_in = statistics.median(r for _, r in rates["1 worker"])
            base_wall = statistics.median(w for w, _ in rates["1 worker"])
            for name, xs in rates.items():
                walls, ins = [w for w, _ in xs], [r for _, r in xs]
                print(f"| {method} | {name} | {max(ins):.1f} | {statistics.median(ins):.1f} | "
                      f"{statistics.median(ins) / base_in:.2f} | {max(walls):.1f} | {statistics.median(walls):.1f} | "
                      f"{statistics.median(walls) / base_wall:.2f} |", flush=True)
    finally:
        if server is not None:
            server.stop()
            server.cleanup()


if __name__ == "__main__":
    main()
