"""Registry actor: the live map of the system, kept in the ``ca_registry`` bucket.

Every actor process heartbeats an `ActorInfo` (`actors.runtime.presence`). The registry records each beat with
its own clock and derives a status from the age of the last one:

| status  | when                                                   |
|---------|--------------------------------------------------------|
| live    | last heartbeat at most 3 beats ago                     |
| stale   | 3 to 10 beats missed                                   |
| dead    | more than 10 beats missed; removed 60 s after the last beat (bucket TTL) |
| pending | expected by an operator (`ca-actors agents expect`), not seen yet |

A clean shutdown deregisters at once (``ca.registry.bye.<id>``). Changes are events on
``ca.registry.evt.actor.<joined|recovered|stale|dead|left|removed|expected>``. On start-up the registry
pings every actor, so a restarted registry knows them all again within one round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any, Literal

import structlog
from nats.aio.msg import Msg
from nats.js.errors import KeyNotFoundError, NoKeysError
from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict, Field

from actors.runtime.presence import ActorInfo
from bus import Bus, new_id, subjects, topology

log = structlog.get_logger(__name__)

Status = Literal["live", "stale", "dead", "pending"]
STALE_AFTER_BEATS = 3
DEAD_AFTER_BEATS = 10


class Expected(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    serves: list[str] = Field(default_factory=list)
    since: float = Field(default_factory=time.time)


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
    inbox = f"_INBOX.ping.{new_id()}"
    answers: list[ActorInfo] = []

    async def on_answer(msg: Msg) -> None:
        with contextlib.suppress(ValueError):
            answers.append(ActorInfo.model_validate_json(msg.data))

    sub = await bus.nc.subscribe(inbox, cb=on_answer)
    await bus.nc.publish(subjects.REGISTRY_PING, b"{}", reply=inbox)
    await asyncio.sleep(wait_s)
    await sub.unsubscribe()
    return answers


class Registry:
    """Records heartbeats, announces changes, forgets dead actors."""

    def __init__(self, bus: Bus, *, heartbeat_s: float) -> None:
        self._bus = bus
        self._heartbeat_s = heartbeat_s
        self._kv = bus.kv(topology.REGISTRY)
        self._expected = bus.kv(topology.EXPECTED)
        self._known: dict[str, tuple[ActorInfo, Status]] = {}
        self._stopping = asyncio.Event()

    async def run(self, started: asyncio.Event | None = None) -> None:
        for info in await actors(self._bus):
            self._known[info.id] = (info, status_of(info, now=time.time(), heartbeat_s=self._heartbeat_s))
        await self._bus.subscribe(subjects.REGISTRY_HEARTBEATS, self._on_heartbeat)
        await self._bus.subscribe(subjects.REGISTRY_BYES, self._on_bye)
        await self._bus.subscribe(subjects.REGISTRY_EXPECT, self._on_expect)
        await ping(self._bus, wait_s=0.0)  # answers arrive as heartbeats
        if started is not None:
            started.set()
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self._heartbeat_s / 2)
            await self._sweep()

    def stop(self) -> None:
        self._stopping.set()

    async def _on_heartbeat(self, msg: Msg) -> None:
        try:
            info = ActorInfo.model_validate_json(msg.data)
        except ValueError as exc:
            log.warning("registry.bad_heartbeat", subject=msg.subject, error=str(exc))
            return
        info = info.model_copy(update={"heartbeat_at": time.time()})
        previous = self._known.get(info.id)
        self._known[info.id] = (info, "live")
        await self._kv.put(info.id, info.model_dump_json().encode())
        if previous is None:
            await self._announce("actor.joined", info)
        elif previous[1] != "live":
            await self._announce("actor.recovered", info)

    async def _on_bye(self, msg: Msg) -> None:
        actor_id = subjects.actor_of(msg.subject)
        known = self._known.pop(actor_id, None)
        with contextlib.suppress(Exception):
            await self._kv.delete(actor_id)
        if known is not None:
            await self._announce("actor.left", known[0])

    async def _on_expect(self, msg: Msg) -> None:
        try:
            want = Expected.model_validate_json(msg.data)
            subjects.token(want.name, "agent name")
        except ValueError as exc:
            answer: dict[str, Any] = {"error": str(exc)}
        else:
            await self._expected.put(want.name, want.model_dump_json().encode())
            await self._bus.nc.publish(subjects.registry_event("actor.expected"), want.model_dump_json().encode())
            answer = {"ok": True, "name": want.name}
        if msg.reply:
            await msg.respond(json.dumps(answer).encode())

    async def _sweep(self) -> None:
        now = time.time()
        for actor_id, (info, old) in list(self._known.items()):
            new = status_of(info, now=now, heartbeat_s=self._heartbeat_s)
            if now - info.heartbeat_at > topology.REGISTRY_TTL_S:
                del self._known[actor_id]
                with contextlib.suppress(Exception):
                    await self._kv.delete(actor_id)
                await self._announce("actor.removed", info)
            elif new != old:
                self._known[actor_id] = (info, new)
                await self._announce(f"actor.{new}", info)

    async def _announce(self, kind: str, info: ActorInfo) -> None:
        log.info("registry." + kind.split(".")[-1], actor=info.id, kind=info.kind, host=info.host)
        await self._bus.nc.publish(subjects.registry_event(kind), info.model_dump_json().encode())


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
