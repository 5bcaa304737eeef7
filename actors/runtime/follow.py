"""Follow a run's events from its first one (an ordered JetStream consumer) until it ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from nats.js.api import DeliverPolicy

from actors.runtime.runs import RunRecord, RunStore
from bus import TERMINAL_EVENTS, Bus, Event, decode, subjects, topology
from configs.errors import ActorError


async def events(bus: Bus, run_id: str, *, timeout_s: float | None = None) -> AsyncIterator[Event]:
    """Every event of `run_id`, in order, ending after the terminal one.

    Raises:
        TimeoutError: the run did not end within `timeout_s`.
    """
    sub = await bus.js.subscribe(subjects.events_of(run_id), ordered_consumer=True, deliver_policy=DeliverPolicy.ALL)
    loop = asyncio.get_running_loop()
    deadline = None if timeout_s is None else loop.time() + timeout_s
    try:
        while True:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"run {run_id} did not end within {timeout_s:g}s")
            try:
                msg = await sub.next_msg(timeout=min(remaining or 1.0, 1.0))
            except Exception:  # noqa: BLE001 - nats TimeoutError: nothing yet, check the deadline
                continue
            event = decode(msg.data)
            if isinstance(event, Event):
                yield event
                if event.kind in TERMINAL_EVENTS:
                    return
    finally:
        await sub.unsubscribe()


async def stored_events(bus: Bus, run_id: str, *, timeout_s: float = 10.0) -> list[Event]:
    """Every event of `run_id` in the stream now, in order (also those after its terminal event).

    Raises:
        TimeoutError: the stream did not hand them over within `timeout_s`.
    """
    sub = await bus.js.subscribe(subjects.events_of(run_id), ordered_consumer=True, deliver_policy=DeliverPolicy.ALL)
    found: list[Event] = []
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                msg = await sub.next_msg(timeout=None)
                event = decode(msg.data)
                if isinstance(event, Event):
                    found.append(event)
                if msg.metadata.num_pending == 0:
                    return found
    finally:
        await sub.unsubscribe()


async def final_record(bus: Bus, run_id: str) -> RunRecord:
    """The run record of an ended run.

    Raises:
        ActorError: no such run.
    """
    record = await RunStore(bus.kv(topology.RUNS)).get(run_id)
    if record is None:
        raise ActorError("no such run", run_id=run_id)
    return record
