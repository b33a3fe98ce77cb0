"""Shared fixtures: real Elasticsearch / OpenSearch nodes (one each per test session) and retrieval backends.

``ESRANK_TEST_ES_URL`` / ``ESRANK_TEST_OS_URL`` point the tests at running servers instead. When a
server cannot be started the dependent tests skip locally but FAIL when ``CI`` is set.
"""
from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

from servers import (ELASTICSEARCH, OPENSEARCH, SERVER_TEST_TIMEOUT, Distribution, Server,  # noqa: E402
                     ServerUnavailable)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Server tests get a per-test timeout (pytest-timeout) unless they set their own."""
    for item in items:
        if item.get_closest_marker("server") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SERVER_TEST_TIMEOUT))


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


class RunningServer:
    """A server the tests talk to: started here (``server`` set) or given by URL."""

    def __init__(self, kind: str, url: str, server: Server | None = None) -> None:
        self.kind = kind
        self.url = url
        self.server = server


def _server(dist: Distribution, env: str) -> Iterator[RunningServer]:
    url = os.environ.get(env)
    if url:
        yield RunningServer(dist.kind, url.rstrip("/"))
        return
    try:
        server = Server(dist).start()
    except (ServerUnavailable, OSError) as e:
        message = f"cannot start {dist.kind} {dist.version}: {e}"
        if _in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    try:
        yield RunningServer(dist.kind, server.url, server)
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def es_server() -> Iterator[RunningServer]:
    """A running Elasticsearch 8.x node."""
    yield from _server(ELASTICSEARCH, "ESRANK_TEST_ES_URL")


@pytest.fixture(scope="session")
def os_server() -> Iterator[RunningServer]:
    """A running OpenSearch 2.x node (with the analysis-common module)."""
    yield from _server(OPENSEARCH, "ESRANK_TEST_OS_URL")


BACKEND_KINDS = ["embedded", pytest.param("elasticsearch", marks=pytest.mark.server),
                 pytest.param("opensearch", marks=pytest.mark.server)]


@pytest.fixture(params=BACKEND_KINDS)
def backend_options(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., object]:
    """A factory of ``BackendOptions`` for a fresh, uniquely named index on each backend kind."""
    from esrank.retrieval.factory import BackendOptions

    kind = request.param
    url = None
    if kind == "elasticsearch":
        url = request.getfixturevalue("es_server").url
    elif kind == "opensearch":
        url = request.getfixturevalue("os_server").url

    def make(name: str = "test", **kw: object) -> BackendOptions:
        index = f"{name}-{uuid.uuid4().hex[:8]}"
        if kind == "embedded":
            return BackendOptions(index, backend="embedded", path=tmp_path / index, **kw)  # type: ignore[arg-type]
        return BackendOptions.server(index, url, backend=kind, **kw)  # type: ignore[arg-type]

    make.kind = kind  # type: ignore[attr-defined]
    return make
