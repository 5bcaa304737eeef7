"""Scheduler actor: turns triggers into runs and runs into outcomes.

- publishes the plans of the flows it serves (versioned, in ``ca_plans``);
- consumes ``ca.trigger.>`` (durable): validates inputs against the flow's state fields, creates the
  run record and the first work items, or rejects the trigger with a ``run.rejected`` event;
- answers trigger *requests* with a `RunAnswer` ``{"run_id": ..., "status": ...}`` (see
  `actors.scheduler.rendezvous`; the messages are in `actors.scheduler.messages`);
- consumes ``ca.ctl.>`` (durable): a run reached END or a node failed for good;
- serves ``ca.run.<id>.cmd`` (cancel), enforces ``config.execution.timeout``;
- on start-up re-drives unfinished runs: re-arms their timeouts and re-launches runs whose first
  work may not have gone out (deduplicated by step id, so nothing runs twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from actors.flow.logic import FlowError
from actors.flow.plan import Plan, PlanStore
from actors.flow.router import Barriers, Moves, Router
from actors.runtime.consume import Drop, consume, dead_letter_to
from actors.runtime.events import Emitter, warn_if_unserved
from actors.runtime.journal import journal_key
from actors.runtime.presence import Load
from actors.runtime.roster import RegistryView
from actors.runtime.runs import FINAL_STATUSES, RunRecord, RunStore
from actors.scheduler.messages import Assigned, RunAnswer, RunCommand
from actors.scheduler.rendezvous import Rendezvous, digest
from bus import (
    Bus,
    RunCancelledData,
    RunEnded,
    RunFailedData,
    RunFinishedData,
    RunRejectedData,
    RunStartedData,
    decode,
    subjects,
    topology,
)
from configs import START, InputError, Settings, closest, initial_state, parse_payload

log = structlog.get_logger(__name__)

QUEUE = "scheduler"
TRIGGER_DURABLE = "scheduler-triggers"
# Headers a trigger may carry: what sent it (cli, webhook, telegram, …) and its conversation, if any.
SOURCE_HEADER = "Ca-Source"
SESSION_HEADER = "Ca-Session"
# A trigger with this header starts at most one run per key (for `topology.IDEMPOTENCY_S`), and every
# request with the key is answered with that run; the stream drops stored copies by it too.
IDEMPOTENCY_HEADER = "Nats-Msg-Id"
CTL_DURABLE = "scheduler-ctl"
# The event that announces each final status but `rejected` (which has its own, `run.rejected`).
_END_DATA: dict[str, type[RunFinishedData | RunFailedData | RunCancelledData]] = {
    "succeeded": RunFinishedData,
    "failed": RunFailedData,
    "cancelled": RunCancelledData,
}


_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def make_run_id(stored_at: float, stream_seq: int, stream_salt: str) -> str:
    """Run id of a stored trigger: its UTC time (readable, sortable to the second) and 40 bits that are
    random across trigger streams yet the same on redelivery.

    `stream_salt` identifies the stream instance (its creation time), so two stacks that each number
    their triggers from 1 (two ``ca-actors run`` in the same second, writing one store) never share an id.
    """
    bits = int.from_bytes(hashlib.sha256(f"{stream_salt}:{stream_seq}".encode()).digest()[:5], "big")
    tail = "".join(_CROCKFORD[(bits >> shift) & 31] for shift in range(35, -1, -5))
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime(stored_at)) + f"-{tail}"


def idempotency_key(subject: str, headers: dict[str, str] | None) -> str | None:
    """The bucket key for a trigger's idempotency key, per flow (hashed: a key may hold any character)."""
    value = (headers or {}).get(IDEMPOTENCY_HEADER)
    return journal_key("trigger", subject, value) if value else None


def origin(headers: dict[str, str] | None) -> dict[str, str]:
    """Where a trigger came from: the ``Ca-Source`` header (default ``nats``) and ``Ca-Session``, if any."""
    headers = headers or {}
    found = {"source": headers.get(SOURCE_HEADER) or "nats"}
    if headers.get(SESSION_HEADER):
        found["session"] = headers[SESSION_HEADER]
    return found


class Scheduler:
    def __init__(
        self,
        bus: Bus,
        settings: Settings,
        plans: Sequence[Plan],
        *,
        actor_id: str,
        registry: RegistryView | None = None,
    ) -> None:
        self._bus = bus
        self._registry = registry
        self._settings = settings
        self._local_plans = list(plans)
        self._id = actor_id
        self._runs = RunStore(bus.kv(topology.RUNS))
        self._plans = PlanStore(bus.kv(topology.PLANS))
        self._events = Emitter(bus, actor_id)
        self._router = Router(Barriers(bus.kv(topology.JOINS)), actor_id)
        self._rendezvous = Rendezvous()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = asyncio.Event()
        self._stream_salt = ""
        self._keys = bus.kv(topology.TRIGGER_KEYS)

    async def run(self, ready: Callable[[], None]) -> None:
        """Publish plans, recover, serve until `stop()`."""
        for plan in self._local_plans:
            await self._plans.publish(plan)
            log.info("scheduler.plan", flow=plan.flow, version=plan.version)
        await self._bus.subscribe(subjects.TRIGGER_ALL, self._on_trigger_request, queue=QUEUE)
        await self._bus.subscribe(subjects.SYS_ASSIGNED, self._on_assigned)
        await self._bus.subscribe(subjects.RUN_CMD_ALL, self._on_command, queue=QUEUE)
        triggers = await self._pull(subjects.TRIGGER_ALL, TRIGGER_DURABLE, topology.TRIGGERS)
        # The trigger stream's creation time tells this stream from every other (see `make_run_id`).
        self._stream_salt = await self._bus.stream_created(topology.TRIGGERS)
        ctl = await self._pull(subjects.CTL_ALL, CTL_DURABLE, topology.CTL)
        await self._recover()
        ready()
        common = {
            "max_concurrency": 32,
            "ack_wait_s": self._settings.ack_wait_s,
            "stopping": self._stopping,
            "max_deliver": self._settings.max_deliver,
        }
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(
                    consume(triggers, self._handle_trigger, name=TRIGGER_DURABLE, on_give_up=self._give_up, **common)  # type: ignore[arg-type]
                )
                ctl_dead = dead_letter_to(self._bus, CTL_DURABLE)
                tg.create_task(consume(ctl, self._handle_ctl, name=CTL_DURABLE, on_give_up=ctl_dead, **common))  # type: ignore[arg-type]
        finally:
            for timer in self._timers.values():
                timer.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

    def stop(self) -> None:
        self._stopping.set()

    def serves(self) -> list[str]:
        return [f"trigger.{p.flow}" for p in self._local_plans]

    def load(self) -> Load:
        return Load(in_flight=len(self._tasks))

    def capabilities(self) -> list[str]:
        return []

    async def _pull(self, subject: str, durable: str, stream: str) -> Any:
        return await self._bus.pull_subscribe(
            subject,
            durable=durable,
            stream=stream,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=self._settings.ack_wait_s,
                # Unlimited: the handlers are idempotent, and a control message must never be dropped.
                max_deliver=-1,
            ),
        )

    # --- triggers ---------------------------------------------------------------------------------

    async def _on_trigger_request(self, msg: Msg) -> None:
        if not msg.reply:
            return  # a plain publish: the stored copy creates the run, nobody waits for an answer
        self._spawn(self._answer_request(msg))

    async def _answer_request(self, msg: Msg) -> None:
        key = idempotency_key(msg.subject, msg.headers)
        answer = await self._keyed_answer(key) if key else None
        if answer is None:
            try:
                answer = await self._rendezvous.wait(key or digest(msg.subject, msg.data), timeout_s=10.0)
            except TimeoutError:
                answer = (await self._keyed_answer(key) if key else None) or RunAnswer(
                    error="the trigger was not processed within 10s; is a scheduler consuming CA_TRIGGERS?"
                )
        with contextlib.suppress(Exception):
            await self._bus.respond(msg, answer)

    async def _keyed_answer(self, key: str) -> RunAnswer | None:
        """The answer for the run a trigger with idempotency `key` started, if one did."""
        run_id = await self._run_of_key(key)
        if run_id is None:
            return None
        record = await self._runs.get(run_id)
        return _answer(record) if record is not None else RunAnswer(run_id=run_id, status="running")

    async def _run_of_key(self, key: str) -> str | None:
        try:
            entry = await self._keys.get(key)
        except KeyNotFoundError:
            return None
        return entry.value.decode() if entry.value else None

    async def _on_assigned(self, msg: Msg) -> None:
        try:
            assigned = Assigned.model_validate_json(msg.data)
        except ValueError as exc:
            log.warning("scheduler.bad_assignment", error=str(exc))
            return
        self._rendezvous.announce(assigned.digest, assigned.answer())

    async def _handle_trigger(self, msg: Msg) -> None:
        meta = msg.metadata
        run_id = make_run_id(meta.timestamp.timestamp(), meta.sequence.stream, self._stream_salt)
        structlog.contextvars.bind_contextvars(run_id=run_id)
        try:
            key = idempotency_key(msg.subject, msg.headers)
            earlier = await self._claim(key, run_id) if key else None
            if key and earlier is not None:  # another trigger with this key started a run: that is the answer
                log.info("run.duplicate_trigger", started=earlier)
                answer = await self._keyed_answer(key) or RunAnswer(run_id=earlier, status="running")
            else:
                answer = await self._start_run(run_id, msg.subject, msg.data, origin(msg.headers))
        finally:
            structlog.contextvars.unbind_contextvars("run_id")
        # A keyed trigger's request waits for its key: requests with other keys never take its answer.
        pair = key or digest(msg.subject, msg.data)
        assigned = Assigned(digest=pair, run_id=answer.run_id, status=answer.status, error=answer.error)
        await self._bus.send(subjects.SYS_ASSIGNED, assigned)

    async def _give_up(self, msg: Msg, error: str) -> None:
        """A trigger no delivery got through: reject its run (once: ``run.rejected``) and keep it as a dead letter."""
        meta = msg.metadata
        run_id = make_run_id(meta.timestamp.timestamp(), meta.sequence.stream, self._stream_salt)
        await dead_letter_to(self._bus, TRIGGER_DURABLE)(msg, error)
        problem = f"the trigger could not be handled: {error}"
        existing = await self._runs.get(run_id)
        if existing is None:
            answer = await self._reject(run_id, msg.subject.split(".")[-1], None, problem)
        else:  # created, then its launch kept failing: the run fails (once) instead
            await self._finish(run_id, "failed", error=problem)
            answer = _answer(await self._runs.get(run_id) or existing)
        pair = idempotency_key(msg.subject, msg.headers) or digest(msg.subject, msg.data)
        assigned = Assigned(digest=pair, run_id=run_id, status=answer.status, error=answer.error)
        await self._bus.send(subjects.SYS_ASSIGNED, assigned)

    async def _claim(self, key: str, run_id: str) -> str | None:
        """Bind idempotency `key` to `run_id`; the run it is bound to when that is another one."""
        try:
            await self._keys.create(key, run_id.encode())
        except KeyWrongLastSequenceError:
            bound = await self._run_of_key(key)
            return bound if bound not in (None, run_id) else None  # ours: a redelivery of this trigger
        return None

    async def _start_run(
        self, run_id: str, subject: str, data: bytes, origin: dict[str, str] | None = None
    ) -> RunAnswer:
        existing = await self._runs.get(run_id)
        if existing is not None:  # a redelivered trigger: make sure its first work (or its end) went out
            if existing.status == "running":
                self._arm_timeout(existing)
                await self._redrive(existing)
            else:
                await self._announce_end(existing)
            return _answer(existing)
        flow = subject.split(".")[-1]
        plan = await self._plans.latest(flow)
        problem: str | None = None
        inputs: Any = None
        state: dict[str, Any] = {}
        if plan is None:
            known = await self._plans.flows()
            hint = closest(flow, known)
            served = ", ".join(known) or "none"
            problem = f"flow '{flow}' is not served by this stack" + (
                f"; did you mean '{hint}'?" if hint else f" (served: {served})"
            )
        else:
            try:
                # Size, encoding, nesting and number length are checked on the bytes, before parsing.
                inputs = parse_payload(data)
                if not isinstance(inputs, dict):
                    raise InputError([f"inputs must be a JSON object, got {type(inputs).__name__}"])
                state = initial_state(plan.spec, inputs)
            except InputError as exc:
                problem = str(exc)
        if problem is not None or plan is None:
            return await self._reject(run_id, flow, inputs, problem or "unknown flow")
        try:
            moves = await self._router.start(plan, run_id, state)
        except FlowError as exc:
            return await self._reject(run_id, flow, inputs, str(exc))
        record = RunRecord(
            run_id=run_id,
            flow=flow,
            plan_version=plan.version,
            status="running",
            inputs=inputs,
            state=state,
            timeout_s=plan.timeout_s,
            **(origin or {}),
        )
        if not await self._runs.create(record):
            current = await self._runs.get(run_id)
            return _answer(current or record)
        await self._launch(record, plan, moves)
        self._arm_timeout(record)
        log.info("run.started", flow=flow)
        return _answer(record)

    async def _reject(self, run_id: str, flow: str, inputs: Any, problem: str) -> RunAnswer:
        log.warning("run.rejected", flow=flow, reason=problem)
        record = RunRecord(
            run_id=run_id, flow=flow, status="rejected", inputs=inputs, error=problem, finished_at=time.time()
        )
        await self._runs.create(record)
        await self._announce_end(record)
        return _answer(record)

    # --- outcomes ---------------------------------------------------------------------------------

    async def _handle_ctl(self, msg: Msg) -> None:
        try:
            ended = decode(msg.data)
        except ValueError as exc:
            raise Drop(f"bad control message: {exc}") from exc
        if not isinstance(ended, RunEnded):
            raise Drop(f"unexpected {ended.kind} message on {msg.subject}")
        if ended.kind == "finish":
            await self._finish(ended.run_id, "succeeded", state=ended.state)
        else:
            await self._finish(ended.run_id, "failed", error=ended.error, node=ended.node)

    async def _finish(
        self,
        run_id: str,
        status: str,
        *,
        state: dict[str, Any] | None = None,
        error: str | None = None,
        node: str | None = None,
    ) -> RunRecord | None:
        """Move a running run to a final status (once) and announce it."""
        now = time.time()

        def change(rec: RunRecord) -> RunRecord | None:
            if rec.status != "running":
                return None
            update: dict[str, Any] = {"status": status, "finished_at": now, "error": error}
            if state is not None:
                update["state"] = state
            return rec.model_copy(update=update)

        record = await self._runs.update(run_id, change)
        timer = self._timers.pop(run_id, None)
        if timer is not None:
            timer.cancel()
        if record is None:
            # Already final (a redelivered finish/fail, or a crash after the status change): say so
            # again, so the final event is never lost; its id makes a repeat a no-op in the stream.
            current = await self._runs.get(run_id)
            if current is not None and current.status in FINAL_STATUSES:
                await self._announce_end(current)
            return None
        await self._announce_end(record, node=node)
        return record

    async def _announce_end(self, record: RunRecord, node: str | None = None) -> None:
        """Emit the event of a final run record (deduplicated by run id)."""
        now = record.finished_at or time.time()
        if record.status == "rejected":
            await self._events.emit(
                RunRejectedData(error=record.error),
                run_id=record.run_id,
                flow=_flow_token(record.flow),
                dedup=record.run_id,
            )
            return
        duration_ms = round((now - record.created_at) * 1000, 3)
        data = _END_DATA[record.status](
            status=record.status, duration_ms=duration_ms, state=record.state, error=record.error or None
        )
        await self._events.emit(data, run_id=record.run_id, flow=record.flow, node=node, dedup=record.run_id)
        log.info(data.KIND, run_id=record.run_id, flow=record.flow, duration_ms=duration_ms, error=record.error)

    def _arm_timeout(self, record: RunRecord) -> None:
        if record.timeout_s is None or record.run_id in self._timers:
            return
        remaining = max(0.0, record.created_at + record.timeout_s - time.time())
        loop = asyncio.get_running_loop()
        message = f"run timed out after {record.timeout_s:g}s (config.execution.timeout)"
        self._timers[record.run_id] = loop.call_later(
            remaining, lambda: self._spawn(self._finish(record.run_id, "failed", error=message))
        )

    async def _on_command(self, msg: Msg) -> None:
        run_id = subjects.run_of_cmd(msg.subject)
        try:
            command = RunCommand.model_validate_json(msg.data or b"{}").cmd
        except ValueError:
            command = ""
        if command == "cancel":
            record = await self._finish(run_id, "cancelled", error="cancelled by request")
            current = record or await self._runs.get(run_id)
            answer = RunAnswer(run_id=run_id, status=current.status) if current else RunAnswer(error=f"no run {run_id}")
        else:
            answer = RunAnswer(error=f"unknown command {command!r}; valid: cancel")
        await self._bus.respond(msg, answer)

    # --- recovery ---------------------------------------------------------------------------------

    async def _recover(self) -> None:
        running = [r for r in await self._runs.list() if r.status == "running"]
        for record in running:
            self._arm_timeout(record)
            await self._redrive(record)
        if running:
            log.info("scheduler.recovered", runs=len(running))

    async def _redrive(self, record: RunRecord) -> None:
        """Launch again a running run that has not completed a step yet.

        Later work is durable in CA_WORK from the moment a worker publishes it; only the scheduler's
        own launch can be cut short (a crash between creating the run record and publishing its first
        work). Events and work items are deduplicated by id, so this is safe to repeat.
        """
        if record.steps:
            return
        plan = await self._plans.get(record.flow, record.plan_version)
        if plan is not None:
            await self._launch(record, plan, await self._router.start(plan, record.run_id, record.state))

    async def _launch(self, record: RunRecord, plan: Plan, moves: Moves) -> None:
        """Announce a new run and publish its first work (or its end, for a flow with nothing to do)."""
        started = RunStartedData(
            plan_version=plan.version, inputs=record.inputs, source=record.source, session=record.session or None
        )
        await self._events.emit(started, run_id=record.run_id, flow=record.flow, dedup=record.run_id)
        for item in moves.work:
            await warn_if_unserved(self._registry, self._events, item)
            await self._bus.publish(subjects.work(record.flow, item.node), item, msg_id=item.step_id)
        if moves.finished is not None:
            done = RunEnded(
                kind="finish", run_id=record.run_id, flow=record.flow, node=START, state=moves.finished, sender=self._id
            )
            await self._bus.publish(subjects.ctl(record.flow), done, msg_id=f"{record.run_id}.finish")

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _answer(record: RunRecord) -> RunAnswer:
    error = record.error if record.status in FINAL_STATUSES and record.error else None
    return RunAnswer(run_id=record.run_id, status=record.status, error=error)


def _flow_token(flow: str) -> str:
    """`flow` when it can stand in a subject (events carry it), else "unknown"."""
    try:
        return subjects.token(flow)
    except ValueError:
        return "unknown"
