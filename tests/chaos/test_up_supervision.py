"""`ca-actors up` supervises its actor processes: one that is killed is started again and the stack serves on."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path

import pytest

from tests.helpers import until_sync
from tests.support.cli import child_pids, cli, start_up, stop


@pytest.mark.timeout(120)
def test_up_restarts_an_actor_process_that_dies(tmp_path: Path) -> None:
    proc, _ = start_up(tmp_path, "--llm", "mock")
    children = child_pids(proc.pid)
    try:
        (gateway,) = gateways(proc.pid)
        os.kill(gateway, signal.SIGKILL)
        until_sync(lambda: [p for p in gateways(proc.pid) if p != gateway], "up has started a new llm-gateway")
        result = cli("trigger", "echo", "-i", "message=again", "--wait", "--json", "--data-dir", str(tmp_path))
        assert json.loads(result.stdout)["status"] == "succeeded"
        children = child_pids(proc.pid)
        assert gateway not in children
    finally:
        stop(proc, children)


def gateways(pid: int) -> list[int]:
    """The llm-gateway processes among the children of `pid` (one that has just exited is skipped)."""
    found = []
    for child in child_pids(pid):
        with contextlib.suppress(OSError):
            if "llm-gateway" in Path(f"/proc/{child}/cmdline").read_text():
                found.append(child)
    return found
