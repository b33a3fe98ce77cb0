"""Keyphrase service throughput: documents/s through HTTP (`esrank serve`, concurrent clients) against the
`esrank rank` CLI on the same documents, in one run.

    python3 bench/bench_serve.py --data ../shared/data/acm-dev --train 2000 --test 200 --clients 8 --rounds 3

An embedded index of the first --train acm-dev train documents is built in a temporary directory; the first
--test acm-dev test documents are ranked (method model, the default MiniLM, fp32, k 5, every candidate). The CLI
figure is the wall time of `esrank rank` (process start and model load included) and of its ranking alone (from
its summary line); the service figure is the wall time of all requests once the service is up (it loads once). Each CLI run starts with an
empty keyphrase-embedding cache; the service's first round does too, later rounds reuse its in-memory cache.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_facts  # noqa: E402

from esrank.corpus import read_documents, write_documents  # noqa: E402
from esrank.retrieval.embedded import EmbeddedBackend  # noqa: E402

ESRANK = [sys.executable, "-c", "from esrank.commands import main; main()"]
COMMON = ["--precision", "fp32", "-k", "5"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post(url: str, docs: list[dict]) -> list[dict]:
    req = urllib.request.Request(url, json.dumps({"docs": docs}).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as resp:
        return json.loads(resp.read())["results"]


def run_cli(test_file: Path, index: Path, out: Path) -> tuple[float, float]:
    """(wall seconds, ranking seconds from the summary) of one `esrank rank` run."""
    t = time.perf_counter()
    r = subprocess.run([*ESRANK, "-q", "rank", str(test_file), "--index", "kp", "--path", str(index), *COMMON,
                        "--out", str(out)], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t
    m = re.search(r"ranked (\d+) documents .*?([\d.]+) docs/s", r.stderr)
    ranking = int(m.group(1)) / float(m.group(2)) if m else float("nan")
    return wall, ranking


def run_clients(url: str, docs: list[dict], clients: int, per_request: int) -> tuple[float, dict[str, list[str]]]:
    """Wall seconds for `clients` threads to send every document, `per_request` per request; phrases by id."""
    requests = [docs[i:i + per_request] for i in range(0, len(docs), per_request)]
    lock = threading.Lock()
    out: dict[str, list[str]] = {}

    def worker() -> None:
        while True:
            with lock:
                if not requests:
                    return
                batch = requests.pop()
            for r in post(url, batch):
                with lock:
                    out[r["id"]] = [k["phrase"] for k in r["keyphrases"]]

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/acm-dev", help="Directory with train.jsonl and test.jsonl.")
    ap.add_argument("--train", type=int, default=2000, help="Train documents in the index.")
    ap.add_argument("--test", type=int, default=200, help="Test documents ranked.")
    ap.add_argument("--clients", type=int, default=8, help="Concurrent HTTP clients.")
    ap.add_argument("--per-request", type=int, default=1, help="Documents per HTTP request.")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    data = Path(args.data)
    train = [d for _, d in zip(range(args.train), read_documents(data / "train.jsonl"))]
    test = [d for _, d in zip(range(args.test), read_documents(data / "test.jsonl"))]
    print(f"machine (shared, noisy): {machine_facts()}")
    print(f"index: {len(train)} acm-dev train documents (embedded); ranked: {len(test)} acm-dev test documents; "
          f"{args.clients} clients, {args.per_request} document(s) per request; {args.rounds} rounds")
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        backend = EmbeddedBackend("kp", tmpd / "idx")
        backend.create(overwrite=True)
        backend.bulk_add(train)
        backend.close()
        write_documents(test, tmpd / "test.jsonl")

        cli_wall, cli_rank = [], []
        for i in range(args.rounds):
            w, r = run_cli(tmpd / "test.jsonl", tmpd / "idx", tmpd / "cli.jsonl")
            cli_wall.append(w)
            cli_rank.append(r)
        cli_phrases = {p["id"]: [k["phrase"] for k in p["keyphrases"]]
                       for p in map(json.loads, (tmpd / "cli.jsonl").read_text().splitlines())}

        port = free_port()
        env = dict(os.environ)
        env.pop("ESRANK_SERVE_TOKEN", None)
        t0 = time.perf_counter()
        proc = subprocess.Popen([*ESRANK, "-q", "serve", "--index", "kp", "--path", str(tmpd / "idx"), *COMMON,
                                 "--port", str(port)], env=env, stderr=subprocess.PIPE)
        base = f"http://127.0.0.1:{port}"
        while True:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                if proc.poll() is not None:
                    raise SystemExit(f"esrank serve exited: {proc.stderr.read().decode()[-1000:]}")
                time.sleep(0.2)
        startup = time.perf_counter() - t0
        docs = [{"id": d.id, "title": d.title, "text": d.text} for d in test]
        serve_wall = []
        try:
            for _ in range(args.rounds):
                w, served = run_clients(base + "/v1/keyphrases", docs, args.clients, args.per_request)
                serve_wall.append(w)
            with urllib.request.urlopen(base + "/v1/info", timeout=10) as resp:
                batching = json.loads(resp.read())["batching"]
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(120)
    same = sum(served.get(k) == v for k, v in cli_phrases.items())
    n = len(test)

    def rate(ts: list[float]) -> str:
        return f"min {n / max(ts):.1f} / median {n / statistics.median(ts):.1f} / max {n / min(ts):.1f} docs/s"

    print(f"esrank rank (CLI, process + model load included): {rate(cli_wall)}")
    print(f"esrank rank (CLI, ranking alone):                 {rate(cli_rank)}")
    print(f"esrank serve (HTTP, {args.clients} clients):              {rate(serve_wall)}; "
          f"startup {startup:.1f} s once")
    print("esrank serve by round (round 1 starts with an empty keyphrase cache, as every CLI run; later rounds "
          "reuse the service's cache): " + ", ".join(f"{n / t:.1f}" for t in serve_wall) + " docs/s")
    print(f"ratio serve / CLI, both with an empty cache (serve round 1 vs median CLI): "
          f"{statistics.median(cli_wall) / serve_wall[0]:.2f}x vs the whole CLI run, "
          f"{statistics.median(cli_rank) / serve_wall[0]:.2f}x vs its ranking alone")
    print(f"ratio serve / CLI (medians): {statistics.median(cli_wall) / statistics.median(serve_wall):.2f}x "
          f"vs the whole CLI run, {statistics.median(cli_rank) / statistics.median(serve_wall):.2f}x vs its "
          f"ranking alone")
    print(f"batching: {batching['requests']} requests in {batching['batches']} batches "
          f"({batching['documents'] / max(batching['batches'], 1):.1f} documents per batch)")
    print(f"same keyphrases as the CLI for {same}/{len(cli_phrases)} documents")


if __name__ == "__main__":
    main()
