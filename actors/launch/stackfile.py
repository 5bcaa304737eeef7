"""A data folder belongs to one running stack: its lock, and ``stack.json`` for the commands that look for it.

``up`` takes an exclusive lock on ``<data-dir>/stack.lock`` before it starts anything (two servers
must never write one JetStream store), then writes ``stack.json`` (its NATS URL and pid) once ready,
and only the owner of the lock removes it. The kernel drops the lock when its owner dies, so a stack
that was killed leaves a stale ``stack.json`` that the next ``up`` takes over, with a warning.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from pathlib import Path
from typing import IO, Any, Self

from bus import write_private
from configs.errors import ActorError
from configs.urls import mask_url

STACK_FILE = "stack.json"
LOCK_FILE = "stack.lock"


class StackBusy(ActorError):
    """Another stack runs from this data folder."""

    def __init__(self, data_dir: Path, running: dict[str, Any] | None) -> None:
        self.data_dir = data_dir
        self.running = running or {}
        pid = self.running.get("pid", "?")
        url = self.running.get("nats_url", "its NATS URL is not written yet")
        super().__init__(
            f"a stack is already running from {data_dir} (pid {pid}, NATS {url}); "
            "stop it, or start another one with --data-dir DIR"
        )


def read(data_dir: Path) -> dict[str, Any] | None:
    """What ``stack.json`` says (nats_url, pid, started_at), or None."""
    try:
        record = json.loads((data_dir / STACK_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def read_url(data_dir: Path) -> str | None:
    """The NATS URL of the stack running from `data_dir`, or None when there is none."""
    url = (read(data_dir) or {}).get("nats_url")
    return url if isinstance(url, str) else None


class StackLock:
    """The exclusive hold of one data folder while a stack runs from it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._file: IO[str] | None = None
        # What a stack that died without cleaning up left in stack.json (taken over), if anything.
        self.stale: dict[str, Any] | None = None

    def acquire(self) -> Self:
        """Take the folder.

        Raises:
            StackBusy: another live stack holds it.
        """
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        handle = os.fdopen(fd, "r+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise StackBusy(self.data_dir, read(self.data_dir)) from None
        self._file = handle
        self.stale = read(self.data_dir)
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        return self

    def publish(self, nats_url: str, *, embedded: bool = False) -> None:
        """Write ``stack.json``: other commands on this machine find the stack from it (and, when its
        server is embedded, log in with the users of ``nats-auth.json`` beside it)."""
        # Never a password: a URL that carried one was refused before the stack started (`configs.urls`).
        record = {"nats_url": mask_url(nats_url), "pid": os.getpid(), "started_at": time.time(), "embedded": embedded}
        write_private(self.data_dir / STACK_FILE, json.dumps(record))

    def release(self) -> None:
        """Remove ``stack.json`` and let the folder go. Idempotent."""
        handle, self._file = self._file, None
        if handle is None:
            return
        with contextlib.suppress(OSError):
            (self.data_dir / STACK_FILE).unlink()
        handle.close()
