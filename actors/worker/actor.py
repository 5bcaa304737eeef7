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
from collections.abc import Callable
from typing import Any, Literal

import structlog
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.kv import KeyValue

from actors.flow.llm import LLMClient
from actors.flow.logic import FlowError, map_info, map_runtime, write_outputs
from actors.flow.memory import (
    MemoryRequest,
    MemoryUnavailable,
    MemoryWrite,
    memory_policy,
    memory_text,
    record_content,
    record_id,
    scope_key,
)
from actors.flow.node_exec import (
    BudgetExceeded,
    LLMUnavailable,
    NodeFailed,
    NodeOutcome,
    NodePorts,
    StepContext,
    default_tool_context,
    prompt_variables,
    run_llm_node,
    tools_pinned_to,
)
from actors.flow.plan import Plan, PlanStore
from actors.flow.policy import budget_of, gave_up, retry_policy
from actors.flow.router import Barriers, Moves, Router
from actors.runtime.consume import Abandon, Drop, InFlight, Retry, consume, dead_letter_to
from actors.runtime.events import Emitter, warn_if_unserved
from actors.runtime.logs import FaultTally
from actors.runtime.presence import Load
from actors.runtime.roster import RegistryView
from actors.runtime.runs import RunRecord, RunStore, StepRecord
from actors.sandbox import SandboxError, SandboxPool
from actors.worker.journal import KVToolJournal
from actors.worker.memory_client import MemoryClient
from actors.worker.tool_host import RemoteToolClient, ToolHost
from bus import (
    AnyEventData,
    Bus,
    DeadLetter,
    NodeDiscardedData,
    NodeFailedData,
    NodeFinishedData,
    NodeRetryData,
    NodeStartedData,
    NodeWaitingData,
    RetryKind,
    RunEnded,
    ToolCalledData,
    ToolFinishedData,
    WorkItem,
    decode,
    subjects,
    topology,
)
from configs import SANDBOX_TOOLS, FlowSpec, NodeSpec, Settings, render

log = structlog.get_logger(__name__)


class NodeWorker:
    """Serves every node of every published flow (or only `only_flows`, or only `only_nodes`: "flow.node")."""

    def __init__(
        self,
        bus: Bus,
        settings: Settings,
        llm: LLMClient,
        *,
        actor_id: str,
        only_flows: frozenset[str] | None = None,
        only_nodes: frozenset[str] | None = None,
        registry: RegistryView | None = None,
        serve_tools: bool = False,
    ) -> None:
        """Args:
        only_flows: Serve only these flows (None: every published flow, also later ones).
        only_nodes: Serve only these ``flow.node`` names.
        registry: The roster, to say when work waits for a node no live worker serves.
        serve_tools: Also run the tools flows pin to this actor (``tools: [{name, actor}]``).
        """
        self._bus = bus
        self._settings = settings
        self._llm = llm
        self._id = actor_id
        self._only = only_flows
        self._only_nodes = only_nodes
        self._registry = registry
        self._memory = MemoryClient(bus)
        self._remote_tools = RemoteToolClient(bus)
        self._tool_context = default_tool_context(
            settings.tool_workspace or settings.data_dir / "workspace", settings.allowed_hosts
        )
        self.in_flight = InFlight()
        self._served: set[str] = set()
        self._redelivered = FaultTally("worker.redelivered")
        self._runs = RunStore(bus.kv(topology.RUNS))
        self._plans = PlanStore(bus.kv(topology.PLANS))
        self._events = Emitter(bus, actor_id)
        self._router = Router(Barriers(bus.kv(topology.JOINS)), actor_id)
        self._serving: dict[str, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()
        self._tool_host = ToolHost(bus, actor_id, self._tool_context) if serve_tools else None
        self._journal = KVToolJournal(bus.kv(topology.JOURNAL))
        # Code nodes and python_exec run on this pool; its workers start with the first flow that needs them.
        self.sandbox = SandboxPool(size=settings.sandbox_workers)
        self._sandbox_start: asyncio.Task[None] | None = None

    def serves(self) -> list[str]:
        """The nodes this worker consumes, as ``flow.node``."""
        return sorted(self._served)

    def capabilities(self) -> list[str]:
        return ["tools"] if self._tool_host is not None else []

    def load(self) -> Load:
        """Steps in flight now, and the most it would take (all node subscriptions together); the sandbox
        worker processes and how many of them are busy."""
        pool = self.sandbox.stats()
        return Load(
            in_flight=self.in_flight.count,
            max=self._settings.max_concurrency * max(len(self._served), 1),
            sandbox_workers=pool.workers,
            sandbox_busy=pool.busy,
        )

    async def run(self, ready: Callable[[], None]) -> None:
        """Serve until `stop()`, ready once the plans published before start-up are served; then finish
        the steps in flight."""
        kv = self._bus.kv(topology.PLANS)
        watcher = await kv.watch("*.latest")
        if self._tool_host is not None:
            await self._tool_host.start()
        try:
            await self._follow_plans(watcher, ready)
        finally:
            self._stopping.set()
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]  # nats-py's KeyWatcher is untyped
            await asyncio.gather(*self._serving.values(), return_exceptions=True)
            if self._tool_host is not None:
                await self._tool_host.stop()
            if self._sandbox_start is not None:
                await asyncio.gather(self._sandbox_start, return_exceptions=True)
            await self.sandbox.close()

    def stop(self) -> None:
        """Stop taking new work; steps in flight finish."""
        self._stopping.set()

    async def _start_sandbox(self, flow: str) -> None:
        try:
            await self.sandbox.start()
        except SandboxError:
            log.exception("worker.sandbox_unavailable", flow=flow)

    async def _follow_plans(self, watcher: KeyValue.KeyWatcher, ready: Callable[[], None]) -> None:
        while not self._stopping.is_set():
            try:
                entry = await watcher.updates(timeout=0.5)  # type: ignore[no-untyped-call]  # untyped in nats-py
            except Exception:  # noqa: BLE001 - nats TimeoutError: no news, look at the stop flag again
                continue
            if entry is None:
                ready()  # the watch delivered every plan there was: they are served now
                continue
            if entry.operation is not None or not entry.value:
                continue
            flow = entry.key.removesuffix(".latest")
            try:
                plan = await self._plans.get(flow, entry.value.decode())
                if plan is not None:
                    await self._serve(plan)
            except Exception:
                log.exception("worker.serve_failed", flow=flow)

    async def _serve(self, plan: Plan) -> None:
        if self._only is not None and plan.flow not in self._only:
            return
        if self._tool_host is not None:
            self._tool_host.pin(tools_pinned_to(plan.spec, self._id))
        if uses_sandbox(plan.spec) and self._sandbox_start is None:
            # Pre-start the default profile's workers in the background: no cold first execution, and
            # serving does not wait for them (an execution that comes first waits for its worker).
            self._sandbox_start = asyncio.create_task(self._start_sandbox(plan.flow))
        for node in plan.nodes.values():
            if node.durable in self._serving:
                continue
            if self._only_nodes is not None and f"{plan.flow}.{node.id}" not in self._only_nodes:
                continue
            sub = await self._bus.pull_subscribe(
                node.subject,
                durable=node.durable,
                stream=topology.WORK,
                config=ConsumerConfig(
                    ack_policy=AckPolicy.EXPLICIT,
                    deliver_policy=DeliverPolicy.ALL,
                    ack_wait=self._settings.ack_wait_s,
                    # Unlimited on the server (a message at its limit would sit in the stream for ever);
                    # the worker itself fails the step after `max_deliver` deliveries.
                    max_deliver=-1,
                    max_ack_pending=-1,
                ),
            )
            self._serving[node.durable] = asyncio.create_task(
                consume(
                    sub,
                    self._handle,
                    max_concurrency=self._settings.max_concurrency,
                    ack_wait_s=self._settings.ack_wait_s,
                    stopping=self._stopping,
                    name=node.durable,
                    in_flight=self.in_flight,
                    # The handler fails the node itself at `max_deliver`; the runtime's bound only
                    # catches a failure path that fails too (dead letter, then term).
                    max_deliver=self._settings.max_deliver + 2,
                    on_give_up=dead_letter_to(self._bus, node.durable),
                )
            )
            self._served.add(f"{plan.flow}.{node.id}")
            log.info("worker.serving", flow=plan.flow, node=node.id)

    async def _handle(self, msg: Msg) -> None:
        try:
            item = decode(msg.data)
        except ValueError as exc:
            raise Drop(f"not a work item: {exc}") from exc
        if not isinstance(item, WorkItem):
            raise Drop(f"unexpected {item.kind} message on {msg.subject}")
        structlog.contextvars.bind_contextvars(run_id=item.run_id, flow=item.flow, node=item.node, actor=self._id)
        delivery = msg.metadata.num_delivered or 1
        if delivery > 1:  # its worker died, froze or was cut off, or the step asked to be retried
            self._redelivered.add(node=item.node, delivery=delivery)
        try:
            await self._step(item, delivery)
        except (Retry, Drop, Abandon, asyncio.CancelledError):
            raise
        except Exception as exc:
            if delivery < self._settings.max_deliver:
                raise
            # Out of deliveries on an unexpected error (store, KV, a bug): fail the node loudly rather
            # than leave the work in the stream and the run running for ever.
            log.exception("worker.step_crashed", delivery=delivery)
            plan = await self._plans.get(item.flow, item.plan_version)
            if plan is None:
                raise Drop(f"no plan {item.flow}.{item.plan_version}") from exc
            await self._fail(plan, item, time.time(), f"{type(exc).__name__}: {exc} (after {delivery} deliveries)")
        finally:
            structlog.contextvars.unbind_contextvars("run_id", "flow", "node", "actor")

    async def _step(self, item: WorkItem, delivery: int) -> None:
        step_id = item.step_id
        found = await self._runs.get_revision(item.run_id)
        if found is None or found[0].status != "running":
            log.info("worker.skip", reason="run not running", status=found[0].status if found else None)
            return
        plan = await self._plans.get(item.flow, item.plan_version)
        if plan is None or item.node not in plan.nodes:
            raise Drop(f"no plan {item.flow}.{item.plan_version} with node {item.node}")
        step = found[0].step(step_id)
        if step is None:
            started = time.time()
            try:
                outcome = await self._run_node(plan, item, delivery)
            except NodeFailed as exc:
                await self._fail(plan, item, started, str(exc))
                return
            mine = self._step_record(
                item, "succeeded", started, attempts=outcome.attempts, outputs=outcome.outputs, delivery=delivery
            )
            try:
                # Memory before the step counts as done: a step is never failed after its successors
                # went out; a redelivery rewrites the same record (its id comes from the step id).
                await self._remember(plan, item, mine, delivery)
            except NodeFailed as exc:
                await self._fail(plan, item, started, str(exc))
                return
            step = await self._record(plan, item, mine, found)
            if step is None:  # the run ended meanwhile (cancelled, timed out): the outputs count for nothing
                await self._step_event(item, NodeDiscardedData(duration_ms=round(mine.duration_ms, 3)), dedup=step_id)
                return
            if step.delivery > delivery:
                # We were frozen or cut off past AckWait and a later delivery ran and recorded the step:
                # it owns the message and publishes what follows; we publish nothing.
                raise Abandon(f"step {step_id} was recorded by delivery {step.delivery}; this was delivery {delivery}")
        elif step.status == "failed":  # a redelivery after a crash mid-failure: finish the failure path
            await self._fail(plan, item, step.started_at, step.error or "failed")
            return
        try:
            moves = await self._router.after_step(plan, item, step.outputs)
        except FlowError as exc:
            await self._fail(plan, item, step.started_at, str(exc), recorded=step)
            return
        finished = NodeFinishedData(
            outputs=step.outputs,
            duration_ms=round(step.duration_ms, 3),
            attempts=step.attempts,
            iteration=item.iteration,
            index=item.index,
        )
        await self._step_event(item, finished, dedup=step_id)
        await self._publish(item, moves)

    def _step_record(
        self, item: WorkItem, status: Literal["succeeded", "failed"], started: float, **details: Any
    ) -> StepRecord:
        now = time.time()
        return StepRecord(
            step_id=item.step_id,
            node=item.node,
            iteration=item.iteration,
            index=item.index,
            status=status,
            started_at=started,
            finished_at=now,
            duration_ms=(now - started) * 1000,
            worker=self._id,
            **details,
        )

    async def _remember(self, plan: Plan, item: WorkItem, step: StepRecord, delivery: int) -> None:
        """Write the node's memory (once per step: the record id comes from the step id)."""
        spec = plan.spec
        node = spec.node(item.node)
        policy = memory_policy(spec, node)
        if policy is None or not policy.write:
            return
        content, data = record_content(step.outputs, policy.write)
        record = MemoryWrite(
            id=record_id(item.step_id),
            scope_key=scope_key(spec, node, policy, item.state),
            flow=item.flow,
            node=item.node,
            content=content,
            data=data,
            max_items=policy.max_items,
            ttl_days=policy.ttl_days,
        )
        try:
            await self._memory.write(record)
        except MemoryUnavailable as exc:
            await self._memory_trouble(item, delivery, exc)

    async def _memory_trouble(self, item: WorkItem, delivery: int, exc: MemoryUnavailable) -> None:
        """Memory is down: say so, and try the step again later; after max_deliver tries the node fails."""
        await self._step_event(item, NodeRetryData(attempt=delivery, error=str(exc), kind="memory"))
        if delivery < self._settings.max_deliver:
            raise Retry(str(exc), delay_s=min(2.0 ** (delivery - 1), 30.0)) from exc
        raise NodeFailed(f"memory unavailable after {delivery} attempts: {exc}") from exc

    async def _record(
        self, plan: Plan, item: WorkItem, step: StepRecord, known: tuple[RunRecord, int]
    ) -> StepRecord | None:
        """Append the step to the run record, once: the step that counts (ours, or one recorded first).

        Also checkpoints the run's main-line state. Returns None when the run is no longer running.
        """
        spec = plan.spec
        main_line = item.branch is None and map_info(spec, item.node) is None
        pairs = [(name, step.outputs[name]) for name in spec.node(item.node).outputs if name in step.outputs]
        state = write_outputs(spec, item.state, pairs) if main_line else None
        counted = step

        def append(rec: RunRecord) -> RunRecord | None:
            nonlocal counted
            if rec.status != "running":
                return None
            earlier = rec.step(step.step_id)
            if earlier is not None:
                counted = earlier
                return None
            update: dict[str, Any] = {"steps": [*rec.steps, step]}
            if state is not None:
                update["state"] = state
            return rec.model_copy(update=update)

        if await self._runs.update(item.run_id, append, known=known) is None and counted is step:
            return None  # not running any more
        return counted

    async def _step_event(
        self, item: WorkItem, data: AnyEventData, *, dedup: str | None = None, causation_id: str | None = None
    ) -> None:
        """An event about the step of `item` (its run, flow, node and step id filled in)."""
        await self._events.emit(
            data,
            run_id=item.run_id,
            flow=item.flow,
            node=item.node,
            step_id=item.step_id,
            causation_id=causation_id,
            dedup=dedup,
        )

    async def _run_node(self, plan: Plan, item: WorkItem, delivery: int) -> NodeOutcome:
        """Run the node under its retry policy; raises `Retry` to be redelivered, `NodeFailed` when done."""
        spec = plan.spec
        node = spec.node(item.node)
        is_map_item = map_info(spec, item.node) is not None
        runtime = await self._prompt_names(spec, node, item, delivery, is_map_item)
        started = NodeStartedData(
            iteration=item.iteration,
            index=item.index,
            map=is_map_item,
            delivery=delivery,
            queued_at=item.ts,
            after=item.causation_id,
            inputs=item.state if item.item is None else {"item": item.item, "state": item.state},
        )
        await self._step_event(item, started, causation_id=item.id)
        call = run_llm_node(
            spec,
            node,
            item.state,
            self._ports(item),
            step=StepContext(item.run_id, item.step_id, item.index, runtime, plan_version=item.plan_version),
            max_retries=retry_policy(spec, node).output_retries,
            timeout_s=node.timeout_s or self._settings.llm_timeout_s,
        )
        try:
            return await asyncio.wait_for(call, timeout=node.timeout_s) if node.timeout_s else await call
        except (LLMUnavailable, TimeoutError, BudgetExceeded) as exc:
            raise await self._after_failure(spec, node, item, delivery, exc) from exc

    async def _prompt_names(
        self, spec: FlowSpec, node: NodeSpec, item: WorkItem, delivery: int, is_map_item: bool
    ) -> dict[str, Any]:
        """Names the step adds to its prompt: the map item, the error it handles, what it remembers."""
        runtime: dict[str, Any] = {}
        if is_map_item:
            runtime.update(map_runtime(spec, item.node, item.item, item.index))
        if item.error is not None:
            runtime["error"] = item.error
        memory = memory_policy(spec, node)
        if memory is not None:
            request = MemoryRequest(
                scope_key=scope_key(spec, node, memory, item.state),
                mode=memory.read,
                query=render(node.prompt, item.state, prompt_variables(node, item.state, runtime)),
                limit=memory.limit,
            )
            try:
                runtime["memory"] = memory_text(await self._memory.read(request))
            except MemoryUnavailable as exc:
                await self._memory_trouble(item, delivery, exc)
        return runtime

    def _ports(self, item: WorkItem) -> NodePorts:
        """This worker's model, tools and event sinks, for the step of `item`."""

        async def on_event(data: ToolCalledData | ToolFinishedData) -> None:
            await self._step_event(item, data)

        async def on_retry(attempt: int, problem: str) -> None:
            await self._step_event(item, NodeRetryData(attempt=attempt, error=problem, kind="bad_output"))

        return NodePorts(
            llm=self._llm,
            model_override=self._settings.llm_override,
            tool_context=self._tool_context,
            remote_tools=self._remote_tools,
            on_event=on_event,
            on_retry=on_retry,
            journal=self._journal,
            sandbox=self.sandbox,
            allow_unsandboxed=self._settings.allow_unsandboxed,
            sandbox_image=self._settings.sandbox_image,
        )

    async def _after_failure(
        self, spec: FlowSpec, node: NodeSpec, item: WorkItem, delivery: int, exc: Exception
    ) -> Exception:
        """What a failed LLM call becomes: `Retry` (redeliver later) or `NodeFailed` (for good)."""
        last = delivery >= self._settings.max_deliver
        kind: RetryKind
        if isinstance(exc, BudgetExceeded):
            limits = budget_of(spec)
            if limits is not None and limits.on_exceed == "pause" and not last:
                await self._step_event(item, NodeWaitingData(reason=f"paused: {exc}", budget=True))
                return Retry(str(exc), delay_s=60.0)
            return NodeFailed(str(exc))
        if isinstance(exc, LLMUnavailable):
            if exc.unreachable and not last:
                # No gateway answered: not the provider's fault, so it uses up none of the node's retries.
                return Retry(str(exc), delay_s=min(2.0 ** (delivery - 1), 30.0))
            kind, problem = "llm_error", str(exc)
        else:
            kind, problem = "timeout", f"node '{item.node}' took longer than timeout_s={node.timeout_s:g}"
        policy = retry_policy(spec, node)
        if policy.retries(kind, delivery) and not last:
            await self._step_event(item, NodeRetryData(attempt=delivery, error=problem, kind=kind))
            return Retry(problem, delay_s=policy.delay_s(delivery))
        return NodeFailed(gave_up(problem, delivery))

    async def _publish(self, item: WorkItem, moves: Moves) -> None:
        """Publish what follows the step, all at once (each publish is deduplicated by its step id)."""
        # Each successor names the step that queued it: profiles follow these links to the critical path.
        successors = [work.model_copy(update={"causation_id": item.step_id}) for work in moves.work]
        for work in successors:
            await warn_if_unserved(self._registry, self._events, work)
        publishes = [
            self._bus.publish(subjects.work(work.flow, work.node), work, msg_id=work.step_id) for work in successors
        ]
        if moves.finished is not None:
            done = RunEnded(
                kind="finish", run_id=item.run_id, flow=item.flow, node=item.node, state=moves.finished, sender=self._id
            )
            publishes.append(self._bus.publish(subjects.ctl(item.flow), done, msg_id=f"{item.run_id}.finish"))
        await asyncio.gather(*publishes)

    async def _fail(
        self, plan: Plan, item: WorkItem, started: float, error: str, *, recorded: StepRecord | None = None
    ) -> None:
        """The node failed for good: record and announce it, dead-letter the work, then `on_error` or fail.

        `recorded` is the step when it had succeeded but what follows it could not be decided.
        """
        failed_step = self._step_record(
            item, "failed", started, error=error, outputs=recorded.outputs if recorded else {}
        )

        succeeded_elsewhere = False

        def mark(rec: RunRecord) -> RunRecord | None:
            nonlocal succeeded_elsewhere
            if rec.status != "running":
                return None
            earlier = rec.step(item.step_id)
            if earlier is not None and (earlier.status == "failed" or recorded is None):
                # Already failed (a redelivery: the rest below is idempotent), or a duplicate delivery
                # of this step succeeded meanwhile, and that one counts.
                succeeded_elsewhere = earlier.status == "succeeded"
                return None
            others = [s for s in rec.steps if s.step_id != item.step_id]
            update: dict[str, Any] = {"steps": [*others, failed_step]}
            if recorded is not None and item.branch is None and map_info(plan.spec, item.node) is None:
                # The step had checkpointed its outputs; failing, it takes them back (it counts as not done).
                update["state"] = item.state
            return rec.model_copy(update=update)

        await self._runs.update(item.run_id, mark)
        current = await self._runs.get(item.run_id)
        if succeeded_elsewhere or current is None or current.status != "running":
            return
        target = plan.spec.node(item.node).on_error
        log.warning("worker.node_failed", error=error, on_error=target)
        await self._step_event(item, NodeFailedData(error=error, on_error=target), dedup=item.step_id)
        dead = DeadLetter(
            run_id=item.run_id, flow=item.flow, node=item.node, step_id=item.step_id, error=error, work=item
        )
        await self._bus.publish(subjects.dead_letters(item.run_id), dead, msg_id=item.step_id)
        if target:
            await self._publish(item, await self._router.after_failure(plan, item, target, error))
            return
        failed = RunEnded(kind="fail", run_id=item.run_id, flow=item.flow, node=item.node, error=error, sender=self._id)
        await self._bus.publish(subjects.ctl(item.flow), failed, msg_id=f"{item.run_id}.fail")


def uses_sandbox(spec: FlowSpec) -> bool:
    """True when a flow has code nodes or nodes with a sandbox tool (``python_exec``)."""
    return any(
        node.is_code or any((t if isinstance(t, str) else t.get("name")) in SANDBOX_TOOLS for t in node.tools)
        for node in spec.nodes
    )
