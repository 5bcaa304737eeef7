"""Who is out there: the registry's buckets read by any process (status from heartbeat age, listings, pings).

The registry actor (`actors.registry`) writes ``ca_registry``; everyone else reads it through here.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, Literal

from nats.js.errors import KeyNotFoundError, NoKeysError
from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict, Field

from actors.runtime.presence import ActorInfo
from bus import Bus, Empty, SparseWireModel, WireModel, subjects, topology

Status = Literal["live", "stale", "dead", "pending"]
STALE_AFTER_BEATS = 3
DEAD_AFTER_BEATS = 10


class Expected(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    serves: list[str] = Field(default_factory=list)
    since: float = Field(default_factory=time.time)


class ExpectAgent(WireModel):
    """Asked on ``ca.registry.expect``: an operator expects an agent of this name (serving these nodes)."""

    name: str
    serves: list[str] = Field(default_factory=list)


class ExpectAnswer(SparseWireModel):
    """The registry's answer: ``{"ok": true, "name": ...}``, or ``{"error": ...}``."""

    omit_defaults = frozenset({"ok", "name", "error"})

    ok: bool = False
    name: str | None = None
    error: str | None = None


def status_of(info: ActorInfo, *, now: float, heartbeat_s: float) -> Status:
    """Live, stale or dead, from the age of the actor's last heartbeat."""
    age = now - info.heartbeat_at
    if age <= STALE_AFTER_BEATS * heartbeat_s:
        return "live"
    if age <= DEAD_AFTER_BEATS * heartbeat_s:
        return "stale"
    return "dead"


async def _entries(kv: KeyValue) -> list[bytes]:
    try:
        keys = await kv.keys()
    except NoKeysError:
        return []
    values: list[bytes] = []
    for key in keys:
        with contextlib.suppress(KeyNotFoundError):
            entry = await kv.get(key)
            if entry.value:
                values.append(entry.value)
    return values


async def actors(bus: Bus) -> list[ActorInfo]:
    """Every actor in the registry bucket."""
    return [ActorInfo.model_validate_json(v) for v in await _entries(bus.kv(topology.REGISTRY))]


async def expected(bus: Bus) -> list[Expected]:
    return [Expected.model_validate_json(v) for v in await _entries(bus.kv(topology.EXPECTED))]


def listing(known: list[ActorInfo], wanted: list[Expected], *, now: float, heartbeat_s: float) -> list[dict[str, Any]]:
    """The rows of ``ca-actors agents``: actors with their status, then expected ones not seen yet."""
    rows: list[dict[str, Any]] = []
    names: set[str] = set()
    for info in sorted(known, key=lambda i: (i.kind, i.started_at)):
        status = status_of(info, now=now, heartbeat_s=heartbeat_s)
        if status != "dead":
            names.update({info.id, info.name})
        rows.append(
            {
                "id": info.id,
                "name": info.name,
                "kind": info.kind,
                "host": info.host,
                "pid": info.pid,
                "status": status,
                "heartbeat_age_s": round(now - info.heartbeat_at, 3),
                "load": info.load.model_dump(),
                "serves": info.serves,
                "draining": info.draining,
                "version": info.version,
            }
        )
    for want in wanted:
        if want.name not in names:
            rows.append(
                {
                    "id": want.name,
                    "name": want.name,
                    "kind": "expected",
                    "host": "",
                    "pid": None,
                    "status": "pending",
                    "heartbeat_age_s": None,
                    "load": None,
                    "serves": want.serves,
                    "draining": False,
                    "version": "",
                }
            )
    return rows


async def ping(bus: Bus, *, wait_s: float = 0.5) -> list[ActorInfo]:
    """Ask every actor to answer at once; returns the answers that came within `wait_s`."""
    return await bus.gather(subjects.REGISTRY_PING, Empty(), ActorInfo, wait_s=wait_s)


class RegistryView:
    """Which flow nodes have a live worker, from a watch on the registry bucket (no round trip per ask)."""

    def __init__(self, bus: Bus, *, heartbeat_s: float) -> None:
        self._bus = bus
        self._heartbeat_s = heartbeat_s
        self._actors: dict[str, ActorInfo] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        watcher = await self._bus.kv(topology.REGISTRY).watchall()
        self._task = asyncio.create_task(self._follow(watcher))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _follow(self, watcher: KeyValue.KeyWatcher) -> None:
        try:
            async for entry in watcher:
                if entry is None:
                    continue
                if entry.operation is not None or not entry.value:
                    self._actors.pop(entry.key, None)
                else:
                    with contextlib.suppress(ValueError):
                        self._actors[entry.key] = ActorInfo.model_validate_json(entry.value)
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]  # nats-py's KeyWatcher is untyped

    def unserved(self, flow: str, node: str) -> bool:
        """True when a registry is active and no live, undrained worker serves ``flow.node``.

        With an empty registry (none running, e.g. ``ca-actors run``) nothing is known: False.
        """
        if not self._actors:
            return False
        now = time.time()
        wanted = {f"{flow}.{node}", f"{flow}.*"}
        return not any(
            info.kind == "worker"
            and not info.draining
            and wanted & set(info.serves)
            and status_of(info, now=now, heartbeat_s=self._heartbeat_s) == "live"
            for info in self._actors.values()
        )
