"""One shape for every actor, and one host that runs any of them the same way.

An actor is an object with ``run(ready)`` (serve until `stop()`; call ``ready()`` once it serves),
``stop()`` (take no new work, finish what is in flight, then ``run`` returns), and what the registry
shows of it (``serves()``, ``load()``, ``capabilities()``). `ActorHost` is the async context manager
around it: it starts the actor, waits until it is ready, heartbeats it to the registry (a `Presence`,
which also obeys a drain), and on exit stops it and waits for its work in flight::

    async with ActorHost(actor, bus, info=ActorInfo(id=..., kind="worker")) as host:
        await host.wait()          # until a drain, a stop() or a failure

Status: new → starting → ready → stopping → stopped (or failed, when ``run`` raised).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from enum import StrEnum
from types import TracebackType
from typing import Any, Protocol, Self

import structlog

from actors.runtime.logs import publish_run_logs
from actors.runtime.presence import ActorInfo, Load, Presence
from bus import Bus

log = structlog.get_logger(__name__)


class ActorStatus(StrEnum):
    NEW = "new"
    STARTING = "starting"
    READY = "ready"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


class Actor(Protocol):
    """What every actor (scheduler, worker, LLM gateway, registry, memory, observer, ...) offers its host."""

    async def run(self, ready: Callable[[], None]) -> None:
        """Serve until `stop()`; call `ready` once serving. Returns when the work in flight is done."""
        ...

    def stop(self) -> None:
        """Take no new work; `run` returns once what is in flight is finished. Idempotent."""
        ...

    def serves(self) -> list[str]:
        """What the registry shows this actor serving (subjects, ``flow.node`` names)."""
        ...

    def load(self) -> Load:
        """Work in flight now, and the most it takes at once."""
        ...

    def capabilities(self) -> list[str]:
        """Extra things it does for others (``tools`` for a worker serving pinned tools)."""
        ...


async def first(*aws: Awaitable[Any]) -> None:
    """Wait until the first of several awaitables is done; re-raise if it failed.

    Tasks passed in are left running; helper tasks made here from plain awaitables are cancelled.
    """
    tasks = [asyncio.ensure_future(a) for a in aws]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        if task not in aws:
            task.cancel()
    for task in done:
        exc = task.exception()
        if exc is not None:
            raise exc


class ActorHost:
    """Runs one actor: start, ready, (drain | stop), stopped. With `info`, also its registry presence."""

    def __init__(self, actor: Actor, bus: Bus, *, info: ActorInfo | None = None, heartbeat_s: float = 2.0) -> None:
        self.actor = actor
        self.status = ActorStatus.NEW
        self._bus = bus
        self._info = info
        self._heartbeat_s = heartbeat_s
        self._task: asyncio.Task[None] | None = None
        self._presence: Presence | None = None

    async def start(self) -> Self:
        """Start the actor and return once it serves (with its presence started).

        Raises:
            Exception: whatever the actor's `run` raised before it was ready (status: failed).
        """
        self.status = ActorStatus.STARTING
        ready = asyncio.Event()
        self._task = asyncio.create_task(self._run(ready.set))
        try:
            await first(ready.wait(), self._task)
        except BaseException:
            self.status = ActorStatus.FAILED
            raise
        if not ready.is_set():  # run returned without ever serving (stopped during start-up)
            self.status = ActorStatus.STOPPED
            return self
        if self._info is not None:
            info = self._info.model_copy(update={"capabilities": self.actor.capabilities()})
            self._presence = Presence(
                self._bus,
                info,
                heartbeat_s=self._heartbeat_s,
                serves=self.actor.serves,
                load=self.actor.load,
                on_drain=self.stop,
            )
            await self._presence.start()
        self.status = ActorStatus.READY
        return self

    async def _run(self, ready: Callable[[], None]) -> None:
        # The actor's own task: its log lines about runs become those runs' events, through its bus.
        publish_run_logs(self._bus, self._bus.name)
        await self.actor.run(ready)

    def stop(self) -> None:
        """Stop when idle: no new work, the work in flight finishes (a drain does the same)."""
        if self.status in (ActorStatus.STARTING, ActorStatus.READY):
            self.status = ActorStatus.STOPPING
        self.actor.stop()

    async def wait(self) -> None:
        """Until the actor's `run` returns (after a stop or a drain) or fails (re-raised)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def close(self) -> None:
        """Stop the actor, wait for its work in flight, deregister it. Idempotent; re-raises a failure."""
        task, self._task = self._task, None
        self.stop()
        try:
            if task is not None:
                await task
        except asyncio.CancelledError:
            raise
        except Exception:
            self.status = ActorStatus.FAILED
            raise
        finally:
            presence, self._presence = self._presence, None
            if presence is not None:
                await presence.stop()
            if self.status is not ActorStatus.FAILED:
                self.status = ActorStatus.STOPPED

    async def __aenter__(self) -> Self:
        try:
            return await self.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await self.close()
            raise

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
