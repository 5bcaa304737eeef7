"""Fixtures shared by the test suite: a real nats-server per test, settings, seed-config paths, a tool context."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.tools import ToolContext
from bus import EmbeddedNats
from configs import Settings

ROOT = Path(__file__).resolve().parent.parent
# Our users' seed-format files, shipped in the repo (`configs/seeds/`, a copy of ../shared/seed-configs).
SEEDS = ROOT / "configs" / "seeds"
EXAMPLES = ROOT / "configs" / "examples"


@pytest.fixture(scope="session", autouse=True)
def main_thread_loop() -> Iterator[None]:
    """An event loop set on the main thread for the whole session, closed at its end.

    pytest-asyncio asks for the main thread's loop before each async test and, when none was ever
    set, Python 3.11 makes one that nobody closes; a later sync test's ``asyncio.run()`` drops it and
    the garbage collector then reports an unclosed loop in whatever test runs at that moment.
    """
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield
    asyncio.set_event_loop(None)  # atexit handlers (litellm's) then make their own loop
    loop.close()


@pytest.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[EmbeddedNats]:
    """A fresh ``nats-server -js`` on a free port with its own store directory."""
    async with EmbeddedNats(tmp_path / "nats") as server:
        yield server


@pytest.fixture
def settings(nats_server: EmbeddedNats, tmp_path: Path) -> Settings:
    """Settings pointing at this test's server, with short redelivery times."""
    return Settings(nats_url=nats_server.url, data_dir=tmp_path, ack_wait_s=2.0, max_deliver=5)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """The tools' workspace: a directory inside tmp_path, so tmp_path itself is 'outside'."""
    path = tmp_path / "workspace"
    path.mkdir()
    return path


@pytest.fixture
def ctx(workspace: Path) -> ToolContext:
    """A tool context allowing only 127.0.0.1, with an empty environment and a short time budget."""
    return ToolContext(workspace=workspace, allowed_hosts=frozenset({"127.0.0.1"}), env={}, timeout_s=5.0)


@pytest.fixture
async def litellm_state(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """Keep litellm's module-wide state from leaking between tests (each runs in its own event loop).

    * Its JSON fallback for tools sets `litellm.add_function_to_prompt`: restored after each test.
    * Every async completion queues its success logging on `GLOBAL_LOGGING_WORKER`, one queue for the
      process whose worker task is usually cancelled, unstarted, when the test's loop closes. The queued
      coroutines then run in a later test's loop, and cancelling one mid-flight at that loop's teardown can
      hang it (Python 3.11 `wait_for` swallows the cancellation). So: drop what earlier tests left, give
      this test a fresh queue, drain it in this loop afterwards and stop the worker while it is idle.
    """
    import litellm
    from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER as worker

    monkeypatch.setattr(litellm, "add_function_to_prompt", litellm.add_function_to_prompt)
    _discard_logging_queue(worker)
    yield
    if worker._queue is not None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(worker.flush(), timeout=5)
    task = worker._worker_task
    if task is not None and not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1)
    _discard_logging_queue(worker)


def _discard_logging_queue(worker: Any) -> None:
    queue = worker._queue
    while queue is not None and not queue.empty():
        queue.get_nowait()["coroutine"].close()  # never started: closing it is silent
        queue.task_done()
    worker._queue = None
    worker._worker_task = None


@pytest.fixture
def no_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse any TCP connection outside loopback, so a stray call (litellm, a tool) fails loudly."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0]
            try:
                loopback = ipaddress.ip_address(host).is_loopback
            except ValueError:
                loopback = host == "localhost"
            if not loopback:
                raise OSError(f"test tried to reach the internet: {address!r}")
        real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
