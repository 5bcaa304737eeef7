"""What every actor process tells the registry: who it is, what it serves, how loaded it is.

`Presence` heartbeats an `ActorInfo` on ``ca.registry.hb.<id>`` every ``heartbeat_s``, answers
``ca.registry.ping`` at once (with a reply and a heartbeat, so a restarted registry rebuilds its view
within one round), obeys ``ca.registry.drain.<id>``, and says goodbye on ``ca.registry.bye.<id>`` when
it stops cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version

import structlog
from nats.aio.msg import Msg
from pydantic import BaseModel, ConfigDict, Field

from bus import Bus, WireModel, subjects

log = structlog.get_logger(__name__)


def package_version() -> str:
    try:
        return version("ca-actors")
    except PackageNotFoundError:
        return "0+unknown"


class Load(BaseModel):
    model_config = ConfigDict(extra="forbid")

    in_flight: int = 0
    max: int = 0
    # Node workers: sandbox worker processes (code nodes, python_exec) started, and busy now.
    sandbox_workers: int = 0
    sandbox_busy: int = 0


class ActorInfo(BaseModel):
    """An actor as the registry knows it."""

    model_config = ConfigDict(extra="forbid")

    id: str
    kind: str
    name: str = ""
    host: str = Field(default_factory=socket.gethostname)
    pid: int = Field(default_factory=os.getpid)
    version: str = Field(default_factory=package_version)
    serves: list[str] = Field(default_factory=list)
    capabilities: list[str] = Field(default_factory=list)
    load: Load = Field(default_factory=Load)
    started_at: float = Field(default_factory=time.time)
    # Set by the registry when it records a heartbeat (its own clock, so ages are comparable).
    heartbeat_at: float = 0.0
    draining: bool = False


class DrainAnswer(WireModel):
    """The answer to ``ca.registry.drain.<id>``: the actor stops taking work."""

    ok: bool = True


class ActorReady(WireModel):
    """Announced on ``ca.sys.ready`` once an actor process serves (``ca-actors up`` waits for these)."""

    kind: str
    id: str
    pid: int


class Presence:
    """Heartbeats, ping answers and drain handling for one actor process."""

    def __init__(
        self,
        bus: Bus,
        info: ActorInfo,
        *,
        heartbeat_s: float,
        serves: Callable[[], list[str]] | None = None,
        load: Callable[[], Load] | None = None,
        on_drain: Callable[[], None] | None = None,
    ) -> None:
        self._bus = bus
        self.info = info
        self._heartbeat_s = heartbeat_s
        self._serves = serves
        self._load = load
        self._on_drain = on_drain
        self._task: asyncio.Task[None] | None = None

    def current(self) -> ActorInfo:
        update: dict[str, object] = {}
        if self._serves is not None:
            update["serves"] = self._serves()
        if self._load is not None:
            update["load"] = self._load()
        return self.info.model_copy(update=update)

    async def start(self) -> None:
        await self._bus.subscribe(subjects.REGISTRY_PING, self._on_ping)
        await self._bus.subscribe(subjects.registry_drain(self.info.id), self._on_drain_msg)
        self._task = asyncio.create_task(self._beat())

    async def stop(self) -> None:
        """Stop heartbeating and deregister at once."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self._bus.send(subjects.registry_bye(self.info.id), self.current())
            await self._bus.flush(timeout_s=2)

    async def beat(self) -> None:
        await self._bus.send(subjects.registry_heartbeat(self.info.id), self.current())

    async def _beat(self) -> None:
        while True:
            try:
                await self.beat()
            except Exception as exc:  # noqa: BLE001 - a reconnect in progress: beat again next time
                log.warning("presence.heartbeat_failed", error=str(exc))
            await asyncio.sleep(self._heartbeat_s)

    async def _on_ping(self, msg: Msg) -> None:
        await self.beat()
        await self._bus.respond(msg, self.current())

    async def _on_drain_msg(self, msg: Msg) -> None:
        log.info("presence.drain", actor=self.info.id)
        self.info = self.info.model_copy(update={"draining": True})
        await self.beat()
        await self._bus.respond(msg, DrainAnswer())
        if self._on_drain is not None:
            self._on_drain()
