"""Fixtures of the web-tool tests: a local HTTP server (no internet)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.local_http import LocalServer, serve


@pytest.fixture
def local_server() -> Iterator[LocalServer]:
    """A local HTTP server on a free port of 127.0.0.1, shut down after the test."""
    with serve() as server:
        yield server
