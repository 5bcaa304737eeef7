"""Follow a run's events from its first one (an ordered JetStream consumer) until it ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from actors.runtime.runs import RunRecord, RunStore
from bus import TERMINAL_EVENTS, Bus, Event, subjects, topology
from configs.errors import ActorError


async def events(bus: Bus, run_id: str, *, timeout_s: float | None = None) -> AsyncIterator[Event]:
    """Every event of `run_id`, in order, ending after the terminal one.

    Raises:
        TimeoutError: the run did not end within `timeout_s`.
    """
    loop = asyncio.get_running_loop()
    deadline = None if timeout_s is None else loop.time() + timeout_s
    async with bus.replay(subjects.events_of(run_id), Event) as replay:
        while True:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"run {run_id} did not end within {timeout_s:g}s")
            event = await replay.next(timeout_s=remaining)
            if event is None:
                continue
            yield event
            if event.kind in TERMINAL_EVENTS:
                return


async def stored_events(bus: Bus, run_id: str, *, timeout_s: float = 10.0) -> list[Event]:
    """Every event of `run_id` in the stream now, in order (also those after its terminal event).

    Raises:
        TimeoutError: the stream did not hand them over within `timeout_s`.
    """
    async with bus.replay(subjects.events_of(run_id), Event) as replay:
        return await replay.stored(timeout_s=timeout_s)


async def final_record(bus: Bus, run_id: str) -> RunRecord:
    """The run record of an ended run.

    Raises:
        ActorError: no such run.
    """
    record = await RunStore(bus.kv(topology.RUNS)).get(run_id)
    if record is None:
        raise ActorError("no such run", run_id=run_id)
    return record
