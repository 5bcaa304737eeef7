"""The process stack of the registry tests (e2e and chaos): scheduler, registry and LLM gateway with fast heartbeats."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from actors.cli.console import agent_rows
from bus import Bus
from tests.conftest import EXAMPLES
from tests.helpers import Actors

BEAT = 0.5  # heartbeat of every actor in these tests: stale after 1.5 s, dead after 5 s


@asynccontextmanager
async def registry_stack(url: str) -> AsyncIterator[Actors]:
    """Scheduler, registry and LLM gateway processes serving the examples; workers are up to each test."""
    async with Bus(url, name="test-client") as bus:
        procs = Actors(bus, url, EXAMPLES, "mock/300ms", heartbeat_s=BEAT)
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


async def wait_status(actors: Actors, actor_id: str, status: str | None, timeout_s: float = 15.0) -> float:
    """Seconds until `actor_id` has `status` in the registry (None: gone)."""
    t0 = time.monotonic()
    async with asyncio.timeout(timeout_s):
        while True:
            row = (await rows(actors)).get(actor_id)
            if (row["status"] if row else None) == status:
                return time.monotonic() - t0
            await asyncio.sleep(0.1)
