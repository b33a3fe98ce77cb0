"""Fixtures of the service tests: an embedded index of the sample corpus, the real MiniLM, `esrank serve` in a
subprocess on a free loopback port."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from esrank.corpus import Document, read_documents, sample_corpus_path
from esrank.retrieval.embedded import EmbeddedBackend

TOKEN = "test-token-5f1c"  # the bearer token of the token-protected service


@pytest.fixture(scope="session")
def sample_split() -> tuple[list[Document], list[Document]]:
    """The sample corpus: 80 indexed documents, 10 to rank."""
    docs = list(read_documents(sample_corpus_path()))
    return docs[:80], docs[80:]


@pytest.fixture(scope="session")
def index_path(tmp_path_factory: pytest.TempPathFactory, sample_split: Any) -> Path:
    """An embedded index 'kp' of the 80 indexed sample documents."""
    path = tmp_path_factory.mktemp("serve") / "idx"
    backend = EmbeddedBackend("kp", path)
    backend.create(overwrite=True)
    backend.bulk_add(sample_split[0])
    backend.close()
    return path


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    """A running `esrank serve` subprocess and a small HTTP client for it."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str, token: str | None) -> None:
        self.proc = proc
        self.url = url
        self.token = token

    def call(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None, token: str | None = "",
             headers: dict[str, str] | None = None, timeout: float = 120.0) -> tuple[int, Any]:
        """(status, parsed JSON answer) of one request; ``token`` "" means the service's own."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        tok = self.token if token == "" else token
        if tok:
            req.add_header("Authorization", f"Bearer {tok}")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        """Send a signal and wait for the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def start_service(index_path: Path, *args: str, token: str | None = None, wait: float = 180.0) -> Service:
    """Start `esrank serve` on a free port and wait until /healthz answers."""
    port = free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    env.pop("ESRANK_SERVE_TOKEN", None)
    if token:
        env["ESRANK_SERVE_TOKEN"] = token
    cmd = [sys.executable, "-c", "from esrank.commands import main; main()", "-q", "serve", "--index", "kp",
           "--path", str(index_path), "--port", str(port), "--threads", "1", "--precision", "fp32", *args]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    service = Service(proc, f"http://127.0.0.1:{port}", token)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"esrank serve exited with {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
        try:
            if service.call("GET", "/healthz", timeout=2)[0] == 200:
                return service
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("esrank serve did not start in time")


@pytest.fixture(scope="module")
def service(index_path: Path) -> Iterator[Service]:
    """`esrank serve` with the real MiniLM, a bearer token, small limits and a 50 ms batching window."""
    svc = start_service(index_path, "--max-docs", "8", "--max-doc-chars", "5000", "--max-body-bytes", "20000",
                        "--max-wait-ms", "50", "-k", "5", token=TOKEN)
    yield svc
    svc.stop()
