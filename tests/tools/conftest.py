"""Fixtures of the tool tests: a tool context on a temporary workspace and a local HTTP server (no internet)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.tools import ToolContext
from tests.tools.local_http import LocalServer, serve


@pytest.fixture
def local_server() -> Iterator[LocalServer]:
    """A local HTTP server on a free port of 127.0.0.1, shut down after the test."""
    with serve() as server:
        yield server


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """The tools' workspace: a directory inside tmp_path, so tmp_path itself is 'outside'."""
    path = tmp_path / "workspace"
    path.mkdir()
    return path


@pytest.fixture
def ctx(workspace: Path) -> ToolContext:
    """A context allowing only 127.0.0.1 (any port: the local server's is random), no environment, a short budget."""
    return ToolContext(workspace=workspace, allowed_hosts=frozenset({"127.0.0.1:*"}), env={}, timeout_s=5.0)
