"""Memory actor: serves ``ca.memory.read`` / ``ca.memory.write`` from the store.

With the observer (which writes run history), the only actor that opens the store, so node workers
need no database driver.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog
from nats.aio.msg import Msg

from actors.flow.memory import MemoryRecords, MemoryRequest, MemoryWrite, MemoryWritten, expires
from actors.runtime.presence import Load
from bus import Bus, subjects
from store import MemoryRecord, Store, StoreError

log = structlog.get_logger(__name__)

QUEUE = "memory"


class MemoryActor:
    def __init__(self, bus: Bus, store: Store) -> None:
        self._bus = bus
        self._store = store
        self._stopping = asyncio.Event()

    async def run(self, ready: Callable[[], None]) -> None:
        await self._bus.subscribe(subjects.MEMORY_READ, self._on_read, queue=QUEUE)
        await self._bus.subscribe(subjects.MEMORY_WRITE, self._on_write, queue=QUEUE)
        ready()
        await self._stopping.wait()

    def stop(self) -> None:
        self._stopping.set()

    def serves(self) -> list[str]:
        return ["ca.memory"]

    def load(self) -> Load:
        return Load()

    def capabilities(self) -> list[str]:
        return []

    async def _on_read(self, msg: Msg) -> None:
        try:
            request = MemoryRequest.model_validate_json(msg.data)
            if request.mode == "search" and request.query.strip():
                records = await self._store.search_memories(request.scope_key, request.query, limit=request.limit)
            else:
                limit = 1000 if request.mode == "all" else request.limit
                records = await self._store.memories(request.scope_key, limit=limit)
        except StoreError as exc:
            log.warning("memory.read_failed", error=str(exc))
            await self._bus.respond(msg, MemoryRecords(error=f"memory store unavailable: {exc}"))
            return
        except ValueError as exc:
            await self._bus.respond(msg, MemoryRecords(error=f"bad memory request: {exc}"))
            return
        await self._bus.respond(msg, MemoryRecords(records=[r.model_dump(mode="json") for r in records]))

    async def _on_write(self, msg: Msg) -> None:
        try:
            write = MemoryWrite.model_validate_json(msg.data)
        except ValueError as exc:
            await self._bus.respond(msg, MemoryWritten(error=f"bad memory write: {exc}"))
            return
        try:
            # The record id comes from the step and `add_memory` replaces by id: a redelivered step's
            # write lands once, and a write cut short by an outage is simply done again.
            await self._store.add_memory(
                MemoryRecord(
                    id=write.id,
                    scope_key=write.scope_key,
                    flow=write.flow,
                    node=write.node,
                    content=write.content,
                    data=write.data,
                    expires_at=expires(write.ttl_days),
                )
            )
            older = time.time() - write.ttl_days * 86400 if write.ttl_days else None
            if write.max_items is not None or older is not None:
                await self._store.trim_memories(write.scope_key, max_items=write.max_items, older_than=older)
        except StoreError as exc:
            log.warning("memory.write_failed", error=str(exc))
            await self._bus.respond(msg, MemoryWritten(error=f"memory store unavailable: {exc}"))
            return
        await self._bus.respond(msg, MemoryWritten(ok=True))
