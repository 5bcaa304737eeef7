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
import time
from collections.abc import Callable

import structlog
from nats.aio.msg import Msg

from actors.runtime.presence import ActorInfo, Load
from actors.runtime.roster import ExpectAgent, ExpectAnswer, Expected, Status, actors, ping, status_of
from bus import Bus, subjects, topology

log = structlog.get_logger(__name__)


class Registry:
    """Records heartbeats, announces changes, forgets dead actors."""

    def __init__(self, bus: Bus, *, heartbeat_s: float) -> None:
        self._bus = bus
        self._heartbeat_s = heartbeat_s
        self._kv = bus.kv(topology.REGISTRY)
        self._expected = bus.kv(topology.EXPECTED)
        self._known: dict[str, tuple[ActorInfo, Status]] = {}
        self._stopping = asyncio.Event()

    async def run(self, ready: Callable[[], None]) -> None:
        for info in await actors(self._bus):
            self._known[info.id] = (info, status_of(info, now=time.time(), heartbeat_s=self._heartbeat_s))
        await self._bus.subscribe(subjects.REGISTRY_HEARTBEATS, self._on_heartbeat)
        await self._bus.subscribe(subjects.REGISTRY_BYES, self._on_bye)
        await self._bus.subscribe(subjects.REGISTRY_EXPECT, self._on_expect)
        await ping(self._bus, wait_s=0.0)  # answers arrive as heartbeats
        ready()
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self._heartbeat_s / 2)
            await self._sweep()

    def stop(self) -> None:
        self._stopping.set()

    def serves(self) -> list[str]:
        return ["ca.registry"]

    def load(self) -> Load:
        return Load()

    def capabilities(self) -> list[str]:
        return []

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
            asked = ExpectAgent.model_validate_json(msg.data)
            subjects.token(asked.name, "agent name")
        except ValueError as exc:
            answer = ExpectAnswer(error=str(exc))
        else:
            want = Expected(name=asked.name, serves=asked.serves)
            await self._expected.put(want.name, want.model_dump_json().encode())
            await self._bus.send(subjects.registry_event("actor.expected"), want)
            answer = ExpectAnswer(ok=True, name=want.name)
        await self._bus.respond(msg, answer)

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
        verdict = kind.split(".")[-1]
        # An actor that stops beating is a fault an operator wants to see: one warning per verdict.
        say = log.warning if verdict in ("stale", "dead") else log.info
        say("registry." + verdict, actor=info.id, kind=info.kind, host=info.host, load=info.load.in_flight)
        await self._bus.send(subjects.registry_event(kind), info)
