"""Memory actor: serves ``ca.memory.read`` / ``ca.memory.write`` from the store, and records run history.

The only actor (with the CLI) that opens the store, so node workers need no database driver. It also
follows the terminal run events (a durable consumer: nothing is missed while it is down) and writes
each ended run to the store, so run history outlives the 7-day NATS buckets.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import structlog
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from actors.consume import Drop, Retry, consume
from actors.memory import MemoryRequest, MemoryWrite, expires
from actors.runs import RunStore
from bus import Bus, Event, decode, subjects, topology
from configs import Settings
from store import MemoryRecord, RunHistory, Store, StoreError

log = structlog.get_logger(__name__)

QUEUE = "memory"
HISTORY_DURABLE = "memory-run-history"
_TERMINAL = ("run.finished", "run.failed", "run.cancelled", "run.rejected")


class MemoryActor:
    def __init__(self, bus: Bus, store: Store, settings: Settings) -> None:
        self._bus = bus
        self._store = store
        self._settings = settings
        self._runs = RunStore(bus.kv(topology.RUNS))
        self._stopping = asyncio.Event()

    async def run(self, started: asyncio.Event | None = None) -> None:
        await self._bus.subscribe(subjects.MEMORY_READ, self._on_read, queue=QUEUE)
        await self._bus.subscribe(subjects.MEMORY_WRITE, self._on_write, queue=QUEUE)
        history = await self._bus.js.pull_subscribe(
            "ca.evt.*.run.*",
            durable=HISTORY_DURABLE,
            stream=topology.EVENTS,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.NEW,
                ack_wait=self._settings.ack_wait_s,
                max_deliver=-1,
            ),
        )
        self._bus.track(history)
        if started is not None:
            started.set()
        await consume(
            history,
            self._record_run,
            max_concurrency=8,
            ack_wait_s=self._settings.ack_wait_s,
            stopping=self._stopping,
            name=HISTORY_DURABLE,
        )

    def stop(self) -> None:
        self._stopping.set()

    async def _answer(self, msg: Msg, body: dict[str, Any]) -> None:
        if msg.reply:
            await msg.respond(json.dumps(body, default=str).encode())

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
            await self._answer(msg, {"error": f"memory store unavailable: {exc}"})
            return
        except ValueError as exc:
            await self._answer(msg, {"error": f"bad memory request: {exc}"})
            return
        await self._answer(msg, {"records": [r.model_dump(mode="json") for r in records]})

    async def _on_write(self, msg: Msg) -> None:
        try:
            write = MemoryWrite.model_validate_json(msg.data)
        except ValueError as exc:
            await self._answer(msg, {"error": f"bad memory write: {exc}"})
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
            await self._answer(msg, {"error": f"memory store unavailable: {exc}"})
            return
        await self._answer(msg, {"ok": True})

    async def _record_run(self, msg: Msg) -> None:
        try:
            event = decode(msg.data)
        except ValueError as exc:
            raise Drop(f"not an event: {exc}") from exc
        if not isinstance(event, Event) or event.kind not in _TERMINAL:
            return
        record = await self._runs.get(event.run_id)
        if record is None:
            return
        duration = (record.finished_at - record.created_at) * 1000 if record.finished_at else None
        history = RunHistory(
            run_id=record.run_id,
            flow=record.flow,
            status=record.status,
            created_at=record.created_at,
            finished_at=record.finished_at,
            duration_ms=duration,
            error=record.error,
            inputs=record.inputs,
            state=record.state,
            steps=[s.model_dump(mode="json", exclude={"outputs"}) for s in record.steps],
        )
        try:
            await self._store.put_run(history)
        except StoreError as exc:
            raise Retry(f"run history not written: {exc}", delay_s=2.0) from exc
