"""The process stack of the registry tests (e2e and chaos): scheduler, registry and LLM gateway with fast heartbeats."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from nats.aio.msg import Msg

from actors.cli.console import agent_rows
from bus import Bus, EmbeddedNats, Role, subjects
from tests.conftest import EXAMPLES
from tests.helpers import Actors, until

BEAT = 0.5  # heartbeat of every actor in these tests: stale after 1.5 s, dead after 5 s


@asynccontextmanager
async def registry_stack(server: EmbeddedNats) -> AsyncIterator[Actors]:
    """Scheduler, registry and LLM gateway processes serving the examples; workers are up to each test."""
    url = server.url
    async with Bus(url, name="test-client", credentials=server.credentials(Role.ADMIN)) as bus:
        procs = Actors(bus, url, EXAMPLES, "mock/300ms", heartbeat_s=BEAT, auth_file=server.auth_file)
        await procs.listen()
        try:
            await procs.start("scheduler")
            await procs.start("registry")
            await procs.start("llm-gateway")
            yield procs
        finally:
            procs.stop_all()


async def rows(actors: Actors) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in await agent_rows(actors.bus, BEAT)}


async def wait_status(actors: Actors, actor_id: str, status: str | None, timeout_s: float = 15.0) -> None:
    """Until `actor_id` has `status` in the registry's bucket (None: gone from it)."""

    async def reached() -> bool:
        row = (await rows(actors)).get(actor_id)
        return (row["status"] if row else None) == status

    await until(reached, f"{actor_id} is {status or 'gone'} in the registry", timeout_s=timeout_s)


class RegistryEvents:
    """The registry's announcements (``ca.registry.evt.actor.<change>``) from the moment `start` subscribes."""

    def __init__(self) -> None:
        self.changes: list[tuple[str, str]] = []  # (change, actor id or expected name), in arrival order
        self._changed = asyncio.Event()

    async def start(self, bus: Bus) -> RegistryEvents:
        await bus.subscribe(subjects.REGISTRY_EVENTS_ALL, self._on)
        await bus.flush()  # subscribed at the server before the caller goes on
        return self

    async def _on(self, msg: Msg) -> None:
        body = json.loads(msg.data)
        self.changes.append((msg.subject.rsplit(".", 1)[-1], body.get("id") or body["name"]))
        self._changed.set()

    def of(self, actor_id: str) -> list[str]:
        """The changes announced for `actor_id`, in order (joined, stale, dead, recovered, left, ...)."""
        return [change for change, who in self.changes if who == actor_id]

    async def wait_for(self, change: str, actor_id: str, timeout_s: float = 30.0) -> None:
        async with asyncio.timeout(timeout_s):
            while change not in self.of(actor_id):
                self._changed.clear()
                await self._changed.wait()
