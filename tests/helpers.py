"""Helpers for integration tests: collect events, wait for a condition, run a flow on a stack, write flow files."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg

from actors.cli.console import trigger_and_wait
from actors.flow import load_flows
from actors.flow.plan import Plan
from actors.runtime.presence import ActorReady
from actors.scheduler.messages import RunAnswer, TriggerInputs
from bus import AuthFile, Bus, BusError, Event, Replay, Role, subjects
from tests.conftest import ROOT

T = TypeVar("T")


def plans(*paths: Path) -> list[Plan]:
    """Compile flow files, failing the test on any error."""
    flow_set = load_flows(paths)
    assert not flow_set.errors, flow_set.errors
    return flow_set.plans


async def trigger(bus: Bus, flow: str, inputs: dict[str, Any], headers: dict[str, str] | None = None) -> RunAnswer:
    """Start a run by request, as the CLI does, and return the scheduler's answer."""
    return await bus.request(subjects.trigger(flow), TriggerInputs(inputs), RunAnswer, timeout_s=10, headers=headers)


async def start_run(bus: Bus, flow: str, inputs: dict[str, Any]) -> str:
    """The id of a run started by request (failing the test when none was made)."""
    answer = await trigger(bus, flow, inputs)
    assert answer.run_id is not None, answer
    return answer.run_id


@contextlib.asynccontextmanager
async def outside_client(url: str, auth_file: Path | None, role: Role = Role.ADMIN) -> AsyncIterator[Client]:
    """A plain nats-py connection (logged in as `role` with the server's generated users, when it has
    some): what any NATS client sees and sends, bytes and all."""
    login = AuthFile.read(auth_file).credentials(role).connect_options() if auth_file else {}
    nc = await nats.connect(url, **login)
    try:
        yield nc
    finally:
        await nc.close()


async def run_flow(bus: Bus, flow: str, inputs: dict[str, Any], timeout_s: float = 30.0) -> dict[str, Any]:
    """Trigger a run by request and wait for its result."""
    result = await trigger_and_wait(bus, flow, inputs, wait=True, timeout_s=timeout_s, progress=False)
    assert result is not None, "trigger was not answered"
    return result


class EventLog:
    """Every event stored in the CA_EVENTS stream, read like an observer does (ordered consumer).

    The stream is what counts: a step redelivered after a crash re-publishes its events, which the
    stream drops by ``Nats-Msg-Id`` while a plain core subscriber would see them twice.
    """

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed = asyncio.Event()
        self._reading: asyncio.Task[None] | None = None

    async def start(self, bus: Bus) -> EventLog:
        """Read from the first stored event on, until `bus` closes."""
        replay = await bus.replay(subjects.EVENTS_ALL, Event).open()
        self._reading = asyncio.create_task(self._read(replay))
        return self

    async def _read(self, replay: Replay[Event]) -> None:
        try:
            while True:
                event = await replay.next(timeout_s=0.5)
                if event is not None:
                    self.events.append(event)
                    self._changed.set()
        except BusError:
            return  # the bus closed

    def of(self, kind: str, run_id: str | None = None) -> list[Event]:
        return [e for e in self.events if e.kind == kind and (run_id is None or e.run_id == run_id)]

    async def wait_for(self, kind: str, *, count: int = 1, run_id: str | None = None, timeout_s: float = 30.0) -> Event:
        """The `count`-th event of `kind` (waiting for it)."""
        async with asyncio.timeout(timeout_s):
            while len(self.of(kind, run_id)) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.of(kind, run_id)[count - 1]


async def until(
    check: Callable[[], Awaitable[T]] | Callable[[], T], what: str, *, timeout_s: float = 30.0, every_s: float = 0.05
) -> T:
    """Poll `check` (sync or async) until it returns something truthy, and return that; fail after `timeout_s`.

    For conditions nothing announces: rows another process writes to a database or a KV bucket, the
    process table. Where an event announces the condition, wait for the event (`EventLog.wait_for`).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value] - awaited above when it was an awaitable
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting until {what}")
        await asyncio.sleep(every_s)


def until_sync(check: Callable[[], T], what: str, *, timeout_s: float = 30.0, every_s: float = 0.05) -> T:
    """`until` for tests that are not coroutines (they drive `ca-actors` processes with blocking calls)."""
    deadline = time.monotonic() + timeout_s
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting until {what}")
        time.sleep(every_s)
    return value


def write_flow(path: Path, body: str) -> Path:
    path.write_text(body)
    return path


def write_script(path: Path, outputs: dict[str, list[Any]]) -> Path:
    """A mock script file (JSON is valid YAML)."""
    path.write_text(json.dumps(outputs))
    return path


def node_names(result: dict[str, Any]) -> list[str]:
    return [s["node"] for s in result["steps"]]


def linear_flow(name: str, nodes: Iterable[str], *, timeout: float | None = None, max_retries: int = 3) -> str:
    """A linear flow whose nodes each write a str field named after the node."""
    ids = list(nodes)
    fields = "\n".join(f"    {n}: {{type: str, default: ''}}" for n in ids)
    node_yaml = "\n".join(
        f"  - {{id: {n}, prompt: 'Work on {{state.topic}} at {n}', outputs: [{n}], "
        f"output_schema: {{type: object, fields: [{{name: {n}, type: str}}]}}}}"
        for n in ids
    )
    chain = ["START", *ids, "END"]
    edges = "\n".join(f"  - {{from: {a}, to: {b}}}" for a, b in itertools.pairwise(chain))
    execution = f"    timeout: {timeout}\n" if timeout is not None else ""
    return (
        f'schema_version: "1.0"\nflow: {{name: {name}}}\nstate:\n  fields:\n    topic: {{type: str, required: true}}\n'
        f"{fields}\nnodes:\n{node_yaml}\nedges:\n{edges}\nconfig:\n  execution:\n{execution}"
        f"    max_retries: {max_retries}\n"
    )


class Actors:
    """Starts `ca-actors` actor processes (each a real OS process) and waits for each to announce itself."""

    def __init__(
        self,
        bus: Bus,
        url: str,
        flows: Path,
        llm: str,
        heartbeat_s: float = 2.0,
        env: dict[str, str] | None = None,
        *,
        auth_file: Path | None,
    ) -> None:
        """`bus` must be allowed to hear ``ca.sys.ready`` (the admin user); the processes log in with the
        users of `auth_file` (each as its own role), or anonymously when None."""
        self.bus = bus
        self.auth_file = auth_file
        self.env = dict(env or {})
        self.heartbeat_s = heartbeat_s
        self.url = url
        self.flows = flows
        self.llm = llm
        self.procs: list[subprocess.Popen[bytes]] = []
        self._ready: asyncio.Queue[ActorReady] = asyncio.Queue()

    async def listen(self) -> None:
        async def on_ready(msg: Msg) -> None:
            await self._ready.put(ActorReady.model_validate_json(msg.data))

        await self.bus.subscribe(subjects.SYS_READY, on_ready)

    async def start(self, kind: str) -> subprocess.Popen[bytes]:
        """`ca-actors actor KIND` with this object's flows and model."""
        cmd = ["actor", kind, "--nats", self.url, "--llm", self.llm, "--flows", str(self.flows)]
        return await self.spawn(cmd)

    async def start_agent(self, *args: str) -> subprocess.Popen[bytes]:
        """`ca-actors agent --nats URL ARGS...`."""
        return await self.spawn(["agent", "--nats", self.url, *args])

    async def start_many(self, kinds: Iterable[str]) -> list[subprocess.Popen[bytes]]:
        """Start an actor process of each kind at once, and wait until every one announced itself ready."""
        procs = [
            self._popen(["actor", k, "--nats", self.url, "--llm", self.llm, "--flows", str(self.flows)]) for k in kinds
        ]
        waiting = {p.pid for p in procs}
        async with asyncio.timeout(60):
            while waiting:
                waiting.discard((await self._ready.get()).pid)
        return procs

    async def spawn(self, args: list[str]) -> subprocess.Popen[bytes]:
        """Start `ca-actors ARGS` and wait until it announces itself ready."""
        proc = self._popen(args)
        async with asyncio.timeout(30):
            announced = await self._ready.get()
        assert announced.pid == proc.pid
        return proc

    def _popen(self, args: list[str]) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "actors", *args, "--log-format", "json", "--log-level", "warning"]
        env = {
            **os.environ,
            "CA_ACK_WAIT_S": "1",
            "CA_MAX_DELIVER": "10",
            "CA_HEARTBEAT_S": str(self.heartbeat_s),
            **self.env,
        }
        if self.auth_file is not None:
            env["CA_NATS_AUTH_FILE"] = str(self.auth_file)
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
