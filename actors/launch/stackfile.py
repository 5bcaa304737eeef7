"""``<data-dir>/stack.json``: how other commands on this machine find the stack ``up`` is running."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

STACK_FILE = "stack.json"


def write(data_dir: Path, nats_url: str) -> None:
    """Record the running stack (its NATS URL and the supervisor's pid)."""
    (data_dir / STACK_FILE).write_text(
        json.dumps({"nats_url": nats_url, "pid": os.getpid(), "started_at": time.time()})
    )


def read_url(data_dir: Path) -> str | None:
    """The NATS URL of the stack running from `data_dir`, or None when there is none."""
    try:
        return str(json.loads((data_dir / STACK_FILE).read_text())["nats_url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remove(data_dir: Path) -> None:
    with contextlib.suppress(OSError):
        (data_dir / STACK_FILE).unlink()
