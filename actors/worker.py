"""Node worker actor: consumes ``ca.work.<flow>.<node>`` and runs each step exactly once in effect.

For each work item: check the run is still running, reuse the step's recorded result if it has one
(a redelivery after a crash), otherwise run the node and record the result insert-if-absent; then
checkpoint the run (compare-and-swap), publish the successors with deterministic ``Nats-Msg-Id``s and
only then ack. Workers learn flows from the ``ca_plans`` bucket, so they need no files and pick up
flows published after they started. All workers share one durable consumer per node: running more
worker processes (on any machine) spreads the work.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.kv import KeyValue

from actors.consume import Drop, Retry, consume
from actors.events import Emitter
from actors.llm_types import LLMClient
from actors.node_exec import LLMUnavailable, NodeFailed, run_llm_node
from actors.plan import END, Plan
from actors.runs import PlanStore, RunRecord, RunStore, StepRecord, StepResult, StepStore
from bus import Bus, RunEnded, WorkItem, decode, subjects, topology
from configs import Settings

log = structlog.get_logger(__name__)


class NodeWorker:
    """Serves every node of every published flow (or only `only_flows`)."""

    def __init__(
        self,
        bus: Bus,
        settings: Settings,
        llm: LLMClient,
        *,
        actor_id: str,
        only_flows: frozenset[str] | None = None,
    ) -> None:
        self._bus = bus
        self._settings = settings
        self._llm = llm
        self._id = actor_id
        self._only = only_flows
        self._runs = RunStore(bus.kv(topology.RUNS))
        self._steps = StepStore(bus.kv(topology.STEPS))
        self._plans = PlanStore(bus.kv(topology.PLANS))
        self._events = Emitter(bus, actor_id)
        self._serving: dict[str, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()
        self._ready = asyncio.Event()

    @property
    def serving(self) -> list[str]:
        """Durable consumer names this worker consumes."""
        return sorted(self._serving)

    async def run(self) -> None:
        """Serve until `stop()`; then finish the steps in flight."""
        kv = self._bus.kv(topology.PLANS)
        watcher = await kv.watch("*.latest")
        try:
            await self._follow_plans(watcher)
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]  # nats-py's KeyWatcher is untyped
            await asyncio.gather(*self._serving.values(), return_exceptions=True)

    async def wait_ready(self) -> None:
        """Until the plans published before start-up are being served."""
        await self._ready.wait()

    def stop(self) -> None:
        """Stop taking new work; steps in flight finish."""
        self._stopping.set()

    async def _follow_plans(self, watcher: KeyValue.KeyWatcher) -> None:
        while not self._stopping.is_set():
            try:
                entry = await watcher.updates(timeout=0.5)  # type: ignore[no-untyped-call]  # untyped in nats-py
            except Exception:  # noqa: BLE001 - nats TimeoutError: no news, look at the stop flag again
                continue
            if entry is None:
                self._ready.set()
                continue
            if entry.operation is not None or not entry.value:
                continue
            flow = entry.key.removesuffix(".latest")
            plan = await self._plans.get(flow, entry.value.decode())
            if plan is not None:
                await self._serve(plan)

    async def _serve(self, plan: Plan) -> None:
        if (self._only is not None and plan.flow not in self._only) or plan.unsupported:
            return
        for node in plan.nodes.values():
            if node.durable in self._serving:
                continue
            sub = await self._bus.js.pull_subscribe(
                node.subject,
                durable=node.durable,
                stream=topology.WORK,
                config=ConsumerConfig(
                    ack_policy=AckPolicy.EXPLICIT,
                    deliver_policy=DeliverPolicy.ALL,
                    ack_wait=self._settings.ack_wait_s,
                    max_deliver=self._settings.max_deliver,
                    max_ack_pending=-1,
                ),
            )
            self._bus.track(sub)
            self._serving[node.durable] = asyncio.create_task(
                consume(
                    sub,
                    self._handle,
                    max_concurrency=self._settings.max_concurrency,
                    ack_wait_s=self._settings.ack_wait_s,
                    stopping=self._stopping,
                    name=node.durable,
                )
            )
            log.info("worker.serving", flow=plan.flow, node=node.id)

    async def _handle(self, msg: Msg) -> None:
        try:
            item = decode(msg.data)
        except ValueError as exc:
            raise Drop(f"not a work item: {exc}") from exc
        if not isinstance(item, WorkItem):
            raise Drop(f"unexpected {item.kind} message on {msg.subject}")
        structlog.contextvars.bind_contextvars(run_id=item.run_id, node=item.node, actor=self._id)
        try:
            await self._step(item, msg.metadata.num_delivered or 1)
        finally:
            structlog.contextvars.unbind_contextvars("run_id", "node", "actor")

    async def _step(self, item: WorkItem, delivery: int) -> None:
        run = await self._runs.get(item.run_id)
        if run is None or run.status != "running":
            log.info("worker.skip", reason="run not running", status=run.status if run else None)
            return
        plan = await self._plans.get(item.flow, item.plan_version)
        if plan is None or item.node not in plan.nodes:
            raise Drop(f"no plan {item.flow}.{item.plan_version} with node {item.node}")
        step_id = item.step_id
        result = await self._steps.get(step_id)
        if result is None:
            started = time.time()
            await self._events.emit(
                "node.started",
                run_id=item.run_id,
                flow=item.flow,
                node=item.node,
                step_id=step_id,
                data={"iteration": item.iteration, "index": item.index, "delivery": delivery},
                causation_id=item.id,
            )
            try:
                outcome = await run_llm_node(
                    plan.spec,
                    plan.spec.node(item.node),
                    item.state,
                    llm=self._llm,
                    model_override=self._settings.llm_override,
                    max_retries=plan.max_retries,
                    run_id=item.run_id,
                    step_id=step_id,
                    timeout_s=self._settings.llm_timeout_s,
                    on_retry=lambda attempt, problem: self._events.emit(
                        "node.retry",
                        run_id=item.run_id,
                        flow=item.flow,
                        node=item.node,
                        step_id=step_id,
                        data={"attempt": attempt, "error": problem},
                    ),
                )
            except LLMUnavailable as exc:
                if delivery < self._settings.max_deliver:
                    raise Retry(str(exc), delay_s=min(2.0**delivery, 30.0)) from exc
                await self._fail(item, started, f"LLM unavailable after {delivery} tries: {exc}")
                return
            except NodeFailed as exc:
                await self._fail(item, started, str(exc))
                return
            result, _ = await self._steps.record(
                step_id,
                StepResult(
                    outputs=outcome.outputs,
                    started_at=started,
                    finished_at=time.time(),
                    attempts=outcome.attempts,
                    worker=self._id,
                ),
            )
        await self._advance(plan, item, result)

    async def _advance(self, plan: Plan, item: WorkItem, result: StepResult) -> None:
        """Checkpoint the step into the run, announce it, and hand the run on."""
        state = {**item.state, **result.outputs}
        successors = plan.nodes[item.node].next
        next_items = [
            WorkItem(
                run_id=item.run_id,
                flow=item.flow,
                plan_version=item.plan_version,
                node=n,
                state=state,
                causation_id=item.id,
                sender=self._id,
            )
            for n in successors
            if n != END
        ]
        step = StepRecord(
            step_id=item.step_id,
            node=item.node,
            iteration=item.iteration,
            index=item.index,
            status="succeeded",
            started_at=result.started_at,
            finished_at=result.finished_at,
            duration_ms=(result.finished_at - result.started_at) * 1000,
            attempts=result.attempts,
        )

        def checkpoint(rec: RunRecord) -> RunRecord | None:
            if rec.status != "running" or any(s.step_id == step.step_id for s in rec.steps):
                return None
            pending = [p for p in rec.pending if p != step.step_id] + [n.step_id for n in next_items]
            return rec.model_copy(update={"state": state, "steps": [*rec.steps, step], "pending": pending})

        await self._runs.update(item.run_id, checkpoint)
        current = await self._runs.get(item.run_id)
        if current is None or current.status != "running":
            return
        await self._events.emit(
            "node.finished",
            run_id=item.run_id,
            flow=item.flow,
            node=item.node,
            step_id=item.step_id,
            data={
                "outputs": result.outputs,
                "duration_ms": round(step.duration_ms, 3),
                "attempts": result.attempts,
                "iteration": item.iteration,
                "index": item.index,
            },
            dedup=item.step_id,
        )
        for n in next_items:
            await self._bus.publish(subjects.work(n.flow, n.node), n, msg_id=n.step_id)
        if END in successors:
            done = RunEnded(
                kind="finish", run_id=item.run_id, flow=item.flow, node=item.node, state=state, sender=self._id
            )
            await self._bus.publish(subjects.ctl(item.flow), done, msg_id=f"{item.run_id}.finish")

    async def _fail(self, item: WorkItem, started: float, error: str) -> None:
        """The node failed for good: record it, say so, and tell the scheduler to fail the run."""
        now = time.time()
        step = StepRecord(
            step_id=item.step_id,
            node=item.node,
            iteration=item.iteration,
            index=item.index,
            status="failed",
            started_at=started,
            finished_at=now,
            duration_ms=(now - started) * 1000,
            error=error,
        )

        def record(rec: RunRecord) -> RunRecord | None:
            if rec.status != "running" or any(s.step_id == step.step_id for s in rec.steps):
                return None
            return rec.model_copy(update={"steps": [*rec.steps, step]})

        await self._runs.update(item.run_id, record)
        log.warning("worker.node_failed", error=error)
        await self._events.emit(
            "node.failed",
            run_id=item.run_id,
            flow=item.flow,
            node=item.node,
            step_id=item.step_id,
            data={"error": error},
            dedup=item.step_id,
        )
        failed = RunEnded(kind="fail", run_id=item.run_id, flow=item.flow, node=item.node, error=error, sender=self._id)
        await self._bus.publish(subjects.ctl(item.flow), failed, msg_id=f"{item.run_id}.fail")
