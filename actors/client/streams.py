"""Live reads: the events of a subject from any stream sequence on, and the runs in flight.

Every event comes with its CA_EVENTS sequence, so a reader that loses its connection resumes after
the last one it saw: nothing lost, nothing twice (what the dashboard's SSE ``id`` / ``Last-Event-ID`` is).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog

from actors.client.reads import RunRow
from bus import TERMINAL_EVENTS, Bus, BusError, Event, subjects, topology

log = structlog.get_logger(__name__)


async def follow(bus: Bus, subject: str, *, after: int = 0, new_only: bool = False) -> AsyncIterator[tuple[int, Event]]:
    """Events on `subject` with their stream sequence: those after sequence `after`, then live ones, for ever.

    `new_only` skips what the stream holds and yields only events published from now on.
    """
    async with bus.replay(subject, Event, start_seq=after + 1, new_only=new_only) as replay:
        while True:
            entry = await replay.next_entry(timeout_s=None)
            if entry is not None:
                yield entry


class ActiveRuns:
    """The runs in flight (started, not ended), from the run events of the stream, kept up to date.

    The run history only has runs that ended; this is what a list shows above them.
    """

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._runs: dict[str, RunRow] = {}
        self._task: asyncio.Task[None] | None = None
        self.caught_up = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def rows(self, *, flow: str | None = None) -> list[RunRow]:
        """Runs in flight, newest first."""
        rows = [r for r in self._runs.values() if flow is None or r.flow == flow]
        return sorted(rows, key=lambda r: (r.created_at, r.run_id), reverse=True)

    def apply(self, event: Event) -> None:
        """Take one run event into account."""
        if event.kind == "run.started":
            self._runs[event.run_id] = RunRow(event.run_id, event.flow, "running", event.ts)
        elif event.kind in TERMINAL_EVENTS:
            self._runs.pop(event.run_id, None)

    async def _follow(self) -> None:
        while True:
            try:
                last = await self._bus.last_sequence(topology.EVENTS)
                async with self._bus.replay(subjects.RUN_EVENTS_ALL, Event) as replay:
                    if last == 0:
                        self.caught_up.set()
                    while True:
                        entry = await replay.next_entry(timeout_s=1.0)
                        if entry is None:
                            self.caught_up.set()
                            continue
                        seq, event = entry
                        self.apply(event)
                        if seq >= last:
                            self.caught_up.set()
            except BusError as exc:  # the connection is re-established by nats-py: read again
                log.warning("client.active_runs_failed", error=str(exc))
                self._runs.clear()
                await asyncio.sleep(1.0)
