"""`ca-actors` run as a user runs it (e2e and chaos): one-shot commands, and `up` read until it is ready."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT
from tests.helpers import until_sync

CLI = [sys.executable, "-m", "actors"]


def cli(
    *args: str, timeout: float = 60, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`ca-actors ARGS`; `env` is added to this process's environment."""
    environ = {**os.environ, **env} if env else None
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False, env=environ
    )


def start_up(data_dir: Path, *extra: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], list[str]]:
    """Start `ca-actors up` and read its output until the ready line; `env` is added to the environment."""
    proc = subprocess.Popen(
        [*CLI, "up", "--data-dir", str(data_dir), "--log-format", "json", "--log-level", "warning", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env={**os.environ, **env} if env else None,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.strip())
        if "ready" in line:
            return proc, lines
    proc.kill()
    proc.stdout.close()
    raise AssertionError(f"no ready line: {lines}")


def child_pids(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False)
    return [int(p) for p in out.stdout.split()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def stop(proc: subprocess.Popen[str], pids: list[int]) -> None:
    """SIGTERM `up`, which must exit 0 and leave none of `pids` (its processes) behind."""
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=30)
    if proc.stdout is not None:
        proc.stdout.close()
    assert code == 0
    wait_exited(pids)


def wait_exited(pids: list[int], timeout_s: float = 10.0) -> None:
    """Until none of `pids` runs: `up` reaps its actors, but grandchildren (MLflow's workers) go a moment later."""
    until_sync(lambda: not [pid for pid in pids if alive(pid)], "no orphan process is left behind", timeout_s=timeout_s)


def run_line(flow: Path) -> list[str]:
    """The arguments of the one `# run: ca-actors ...` line a flow file carries."""
    lines = [line.removeprefix("# run: ") for line in flow.read_text().splitlines() if line.startswith("# run: ")]
    assert len(lines) == 1, f"{flow.name} says how to run it in one `# run:` line"
    words = shlex.split(lines[0])
    assert words[0] == "ca-actors"
    return words[1:]
