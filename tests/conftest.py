"""Fixtures shared by the test suite: a real nats-server per test, settings, seed-config paths, a tool context.

Tests live in one folder per kind, and each test is marked with its folder's kind (`pytest -m unit`):

* ``unit/``: no server, no subprocess, no network;
* ``integration/``: a real nats-server, PostgreSQL or Redis, or a fake HTTP server in this process;
* ``e2e/``: starts ``ca-actors`` processes or builds a venv;
* ``chaos/``: kills, stops or cuts processes and servers on purpose.

A test module anywhere else under tests/ stops the run (see `pytest_collection_modifyitems`).
"""

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

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
# Our users' seed-format files, shipped in the repo (`configs/seeds/`, a copy of ../shared/seed-configs).
SEEDS = ROOT / "configs" / "seeds"
EXAMPLES = ROOT / "configs" / "examples"
KINDS = ("unit", "integration", "e2e", "chaos")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with the kind of the folder it is in; refuse a test that is in none of them.

    Refusing (rather than leaving it unmarked) keeps a new module at the top of tests/ out of no
    target silently: `make test-fast` would skip it, `pytest -m unit` too, and nobody would notice.
    """
    unplaced: set[str] = set()
    for item in items:
        try:
            kind = item.path.relative_to(TESTS).parts[0]
        except ValueError:  # a path outside tests/ given on the command line: not ours to classify
            continue
        if kind not in KINDS:
            unplaced.add(str(item.path.relative_to(ROOT)))
            continue
        other = {mark.name for mark in item.iter_markers() if mark.name in KINDS} - {kind}
        if other:
            raise pytest.UsageError(f"{item.nodeid} is marked {', '.join(sorted(other))} but lives in tests/{kind}/")
        item.add_marker(kind)
    if unplaced:
        raise pytest.UsageError(
            "every test module goes in the folder of its kind, tests/{" + ",".join(KINDS) + "}/ "
            f"(see tests/conftest.py); not in one: {', '.join(sorted(unplaced))}"
        )


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
    """A fresh ``nats-server -js`` on a free port with its own store directory, admitting only the users
    it generated (one per role, as every embedded server: `tmp_path / "nats-auth.json"`)."""
    async with EmbeddedNats(tmp_path / "nats") as server:
        yield server


@pytest.fixture
def settings(nats_server: EmbeddedNats, tmp_path: Path) -> Settings:
    """Settings pointing at this test's server, with short redelivery times."""
    return Settings(
        nats_url=nats_server.url,
        nats_auth_file=nats_server.auth_file,
        data_dir=tmp_path,
        ack_wait_s=2.0,
        max_deliver=5,
    )


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
