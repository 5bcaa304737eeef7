"""Observer actor: every ended run becomes a row of run history in the store and, with MLflow, a trace.

It follows the runs' terminal events with a durable consumer (nothing is missed while it is down: the
events wait in CA_EVENTS), reads the run's events back from the stream, rebuilds the run
(`actors.observer.summary`) and writes it. The terminal event is acknowledged only once both are written, so a
crash in between means the run is written again on redelivery: the store row is replaced, and the trace
is found by its ``ca.run_id`` tag and not written twice. Agents never import MLflow; only this actor
does, so traces from every machine land in one tracking store.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import structlog
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from actors.flow.plan import PlanStore
from actors.observer.summary import RunTrace, summarize
from actors.runtime.consume import Drop, Retry, consume, dead_letter_to
from actors.runtime.follow import stored_events
from actors.runtime.presence import Load
from bus import TERMINAL_EVENTS, Bus, Event, decode, subjects, topology
from configs import FlowSpec, Settings
from store import RunIdTaken, Store, StoreError

log = structlog.get_logger(__name__)

DURABLE = "observer"
# Run history used to be written by the memory actor's consumer; the observer removes it.
LEGACY_DURABLE = "memory-run-history"
# How long to wait for a run's events to be read back (they are in the stream already).
READ_TIMEOUT_S = 30.0
# A cancelled or timed-out run may still have steps running (their LLM calls cost money): wait up to
# this long after the run's end for them to finish before writing it.
LATE_STEPS_GRACE_S = 60.0
REMEMBERED_RUNS = 1000
# Runs written at once.
OBSERVE_CONCURRENCY = 4


class TraceSink(Protocol):
    """Where traces go (MLflow in production); blocking calls, run in a thread.

    `tracking_uri` and `experiment` (None: the sink's own) come from the flow's
    ``config.observability.mlflow``.
    """

    def write(self, trace: RunTrace, tracking_uri: str | None = None, experiment: str | None = None) -> str: ...


@dataclass(frozen=True)
class TraceTarget:
    """Whether a run is traced, and where (None: the operator's tracking URI / experiment)."""

    traced: bool
    tracking_uri: str | None = None
    experiment: str | None = None


def trace_target(spec: FlowSpec | None, traces_by_default: bool) -> TraceTarget:
    """A flow's ``config.observability.mlflow`` decides (enabled: true traces, to its URI and experiment;
    enabled: false does not); without the block the operator's ``--traces`` does."""
    block = spec.config.observability.mlflow if spec is not None and spec.config.observability else None
    if block is None:
        return TraceTarget(traces_by_default)
    if not block.enabled:
        return TraceTarget(False)
    return TraceTarget(True, block.tracking_uri, block.experiment_name)


class Observer:
    def __init__(self, bus: Bus, settings: Settings, store: Store | None, sink: TraceSink | None) -> None:
        self._bus = bus
        self._settings = settings
        self._store = store
        self._sink = sink
        self._plans = PlanStore(bus.kv(topology.PLANS))
        self._stopping = asyncio.Event()
        # Runs someone waits for (`observed`), and the last runs written (bounded).
        self._waiters: dict[str, asyncio.Event] = {}
        self._written: OrderedDict[str, None] = OrderedDict()
        # One write at a time per run: a terminal event handled twice at once must not trace twice.
        self._locks: dict[str, asyncio.Lock] = {}

    async def observed(self, run_id: str, timeout_s: float = 60.0) -> bool:
        """Wait until this observer has written `run_id` (for a one-shot stack about to close)."""
        if run_id in self._written:
            return True
        done = self._waiters.setdefault(run_id, asyncio.Event())
        try:
            await asyncio.wait_for(done.wait(), timeout_s)
        except TimeoutError:
            return False
        finally:
            self._waiters.pop(run_id, None)
        return True

    async def run(self, ready: Callable[[], None]) -> None:
        await self._bus.delete_consumer(topology.EVENTS, LEGACY_DURABLE)
        ended = await self._bus.pull_subscribe(
            subjects.RUN_EVENTS_ALL,
            durable=DURABLE,
            stream=topology.EVENTS,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.NEW,
                ack_wait=self._settings.ack_wait_s,
                max_deliver=-1,
            ),
        )
        ready()
        await consume(
            ended,
            self._observe,
            max_concurrency=OBSERVE_CONCURRENCY,
            ack_wait_s=self._settings.ack_wait_s,
            stopping=self._stopping,
            name=DURABLE,
            max_deliver=self._settings.max_deliver,
            on_give_up=dead_letter_to(self._bus, DURABLE),
        )

    def stop(self) -> None:
        self._stopping.set()

    def serves(self) -> list[str]:
        return ["ca.evt"]

    def load(self) -> Load:
        return Load(in_flight=len(self._locks), max=OBSERVE_CONCURRENCY)

    def capabilities(self) -> list[str]:
        return []

    async def _observe(self, msg: Msg) -> None:
        try:
            event = decode(msg.data)
        except ValueError as exc:
            raise Drop(f"not an event: {exc}") from exc
        if not isinstance(event, Event) or event.kind not in TERMINAL_EVENTS:
            return
        lock = self._locks.setdefault(event.run_id, asyncio.Lock())
        try:
            async with lock:
                await self._write(event.run_id)
        finally:
            if not lock.locked():
                self._locks.pop(event.run_id, None)

    async def _write(self, run_id: str) -> None:
        trace = await self.read(run_id)
        late = [s.step_id for s in trace.steps if s.status == "running"]
        if late and trace.finished_at is not None and time.time() < trace.finished_at + LATE_STEPS_GRACE_S:
            raise Retry(f"{len(late)} step(s) of the ended run {run_id} still running", delay_s=2.0)
        if self._store is not None:
            try:
                await self._store.put_run(trace.history())
            except RunIdTaken as exc:
                # Never retried: writing again would fail again, and the other run's row must stay.
                log.error("observer.run_id_taken", run_id=run_id, error=str(exc))
                raise Drop(str(exc)) from exc
            except StoreError as exc:
                raise Retry(f"run history not written: {exc}", delay_s=2.0) from exc
        target = await self._target(trace)
        if self._sink is not None and target.traced:
            try:
                trace_id = await asyncio.to_thread(self._sink.write, trace, target.tracking_uri, target.experiment)
            except Exception as exc:  # any tracking-store trouble: try again later
                log.warning("observer.trace_failed", run_id=trace.run_id, error=str(exc))
                raise Retry(f"trace not written: {exc}", delay_s=5.0) from exc
            log.info("observer.traced", run_id=trace.run_id, trace_id=trace_id)
        self._written[trace.run_id] = None
        if len(self._written) > REMEMBERED_RUNS:
            self._written.popitem(last=False)
        waiter = self._waiters.get(trace.run_id)
        if waiter is not None:
            waiter.set()

    async def _target(self, trace: RunTrace) -> TraceTarget:
        plan = None
        if trace.flow and trace.plan_version:
            try:
                plan = await self._plans.get(trace.flow, trace.plan_version)
            except Exception as exc:  # noqa: BLE001 - KV trouble: the operator's default applies
                log.warning("observer.plan_unreadable", flow=trace.flow, error=str(exc))
        return trace_target(plan.spec if plan is not None else None, self._settings.traces)

    async def read(self, run_id: str) -> RunTrace:
        """The run rebuilt from its events in the stream (also those of steps that ended after it)."""
        try:
            return summarize(await stored_events(self._bus, run_id, timeout_s=READ_TIMEOUT_S))
        except TimeoutError as exc:
            raise Retry(f"events of {run_id} not read back within {READ_TIMEOUT_S:g}s", delay_s=2.0) from exc
