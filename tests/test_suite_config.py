"""The test suite's own guards: no server test can hang CI."""
from __future__ import annotations

import pytest


@pytest.mark.server
def test_server_tests_get_a_per_test_timeout(request: pytest.FixtureRequest) -> None:
    from servers import SERVER_TEST_TIMEOUT

    marker = request.node.get_closest_marker("timeout")
    assert marker is not None and marker.args[0] == SERVER_TEST_TIMEOUT


def test_every_test_has_a_timeout(pytestconfig: pytest.Config) -> None:
    assert float(pytestconfig.getini("timeout")) > 0
