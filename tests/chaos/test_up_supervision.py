"""`ca-actors up` supervises its actor processes: one that is killed is started again and the stack serves on."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.support.cli import child_pids, cli, start_up, stop


@pytest.mark.timeout(120)
def test_up_restarts_an_actor_process_that_dies(tmp_path: Path) -> None:
    proc, _ = start_up(tmp_path, "--llm", "mock")
    children = child_pids(proc.pid)
    try:
        gateway = next(p for p in children if "llm-gateway" in Path(f"/proc/{p}/cmdline").read_text())
        os.kill(gateway, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and gateway in child_pids(proc.pid):
            time.sleep(0.2)
        result = cli("trigger", "echo", "-i", "message=again", "--wait", "--json", "--data-dir", str(tmp_path))
        assert json.loads(result.stdout)["status"] == "succeeded"
        children = child_pids(proc.pid)
        assert gateway not in children
    finally:
        stop(proc, children)
