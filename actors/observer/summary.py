"""What happened in one run, rebuilt from its events: steps with their LLM and tool calls, timings and cost.

The observer turns a run's events (the CA_EVENTS stream keeps them) into a `RunTrace` once the run
has ended; the trace becomes an MLflow trace and, through `RunTrace.history`, the run's row in the
store, which `ca-actors report` reads. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bus import (
    Event,
    LLMCalledData,
    LLMFinishedData,
    NodeDiscardedData,
    NodeFailedData,
    NodeFinishedData,
    NodeRetryData,
    NodeStartedData,
    RunEndData,
    RunRejectedData,
    RunStartedData,
    ToolCalledData,
    ToolFinishedData,
)
from store import RunHistory

_END_STATUS = {
    "run.finished": "succeeded",
    "run.failed": "failed",
    "run.cancelled": "cancelled",
    "run.rejected": "rejected",
}


@dataclass
class LLMCall:
    """One answered LLM request (``llm.called`` … ``llm.finished``)."""

    model: str
    started_at: float
    finished_at: float
    ok: bool = True
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    error: str | None = None
    cache_hit: bool = False
    messages: Any = None
    content: Any = None
    tool_calls: list[str] = field(default_factory=list)

    @property
    def latency_ms(self) -> float:
        return (self.finished_at - self.started_at) * 1000


@dataclass
class ToolCall:
    """One tool call of an agent node (``tool.called`` … ``tool.finished``)."""

    tool: str
    call_id: str
    started_at: float
    finished_at: float | None = None
    arguments: Any = None
    result: Any = None
    error: str | None = None
    actor: str | None = None

    @property
    def duration_ms(self) -> float:
        return 0.0 if self.finished_at is None else (self.finished_at - self.started_at) * 1000


@dataclass
class Step:
    """One step of a run: a node at an iteration and (for a map) an item index."""

    step_id: str
    node: str
    iteration: int = 0
    index: int = 0
    is_map_item: bool = False
    status: str = "running"
    queued_at: float | None = None
    started_at: float = 0.0
    finished_at: float | None = None
    duration_ms: float | None = None
    attempts: int = 1
    retries: int = 0
    after: str | None = None
    error: str | None = None
    worker: str = ""
    inputs: Any = None
    outputs: Any = None
    llm_calls: list[LLMCall] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)

    @property
    def label(self) -> str:
        """The span name: the node, its loop iteration and its map index when they matter."""
        label = self.node
        if self.iteration:
            label += f" (iteration {self.iteration})"
        if self.is_map_item or self.index:
            label += f" [{self.index}]"
        return label

    @property
    def cost_usd(self) -> float:
        return sum(c.cost_usd for c in self.llm_calls)

    def row(self) -> dict[str, Any]:
        """The step as stored in run history (see `store.RunHistory`)."""
        models: dict[str, dict[str, Any]] = {}
        for call in self.llm_calls:
            entry = models.setdefault(call.model, {"calls": 0, "tokens_in": 0, "tokens_out": 0, "cost_usd": 0.0})
            entry["calls"] += 1
            entry["tokens_in"] += call.tokens_in
            entry["tokens_out"] += call.tokens_out
            entry["cost_usd"] += call.cost_usd
            entry["llm_ms"] = round(entry.get("llm_ms", 0.0) + call.latency_ms, 3)
        queue_ms = None if self.queued_at is None else max(0.0, (self.started_at - self.queued_at) * 1000)
        return {
            "step_id": self.step_id,
            "node": self.node,
            "iteration": self.iteration,
            "index": self.index,
            "status": self.status,
            "queued_at": self.queued_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "queue_ms": None if queue_ms is None else round(queue_ms, 3),
            "duration_ms": None if self.duration_ms is None else round(self.duration_ms, 3),
            "llm_ms": round(sum(c.latency_ms for c in self.llm_calls), 3),
            "tool_ms": round(sum(c.duration_ms for c in self.tool_calls), 3),
            "llm_calls": len(self.llm_calls),
            "tool_calls": len(self.tool_calls),
            "tokens_in": sum(c.tokens_in for c in self.llm_calls),
            "tokens_out": sum(c.tokens_out for c in self.llm_calls),
            "cost_usd": self.cost_usd,
            "models": models,
            "attempts": self.attempts,
            "after": self.after,
            "error": self.error,
            "worker": self.worker,
        }


@dataclass
class RunTrace:
    """A whole run as its events tell it."""

    run_id: str
    flow: str
    status: str = "running"
    plan_version: str = ""
    source: str | None = None
    session: str | None = None
    created_at: float = 0.0
    finished_at: float | None = None
    inputs: Any = None
    state: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    steps: list[Step] = field(default_factory=list)
    # LLM calls made for the run outside any step (an LLM judge, say).
    llm_calls: list[LLMCall] = field(default_factory=list)

    @property
    def ended(self) -> bool:
        return self.status != "running"

    def all_llm_calls(self) -> list[LLMCall]:
        return [*self.llm_calls, *(c for s in self.steps for c in s.llm_calls)]

    @property
    def duration_ms(self) -> float | None:
        return None if self.finished_at is None else round((self.finished_at - self.created_at) * 1000, 3)

    def history(self) -> RunHistory:
        """The run's row in the store."""
        calls = self.all_llm_calls()
        return RunHistory(
            run_id=self.run_id,
            flow=self.flow,
            status=self.status,
            created_at=self.created_at,
            finished_at=self.finished_at,
            duration_ms=self.duration_ms,
            cost_usd=sum(c.cost_usd for c in calls),
            error=self.error,
            inputs=self.inputs,
            state=self.state,
            steps=[s.row() for s in self.steps],
            plan_version=self.plan_version,
            source=self.source,
            session=self.session,
            tokens_in=sum(c.tokens_in for c in calls),
            tokens_out=sum(c.tokens_out for c in calls),
            llm_calls=len(calls),
        )


def summarize(events: Iterable[Event]) -> RunTrace:
    """Rebuild a run from its events, in stream order (redelivered steps' repeats are folded in).

    Raises:
        ValueError: there are no events.
    """
    trace: RunTrace | None = None
    steps: dict[str, Step] = {}
    pending_llm: dict[str, list[tuple[Event, LLMCalledData]]] = {}
    pending_tools: dict[tuple[str, str], ToolCall] = {}
    for event in events:
        if trace is None:
            trace = RunTrace(run_id=event.run_id, flow=event.flow, created_at=event.ts)
        step = steps.get(event.step_id) if event.step_id else None
        match event.data:
            case RunStartedData() as started:
                trace.created_at = event.ts
                trace.plan_version = started.plan_version
                trace.inputs = started.inputs
                trace.source = started.source
                trace.session = started.session
            case RunEndData() | RunRejectedData() as end:
                if trace.ended:
                    continue  # a repeated announcement of the end
                trace.status = _END_STATUS[event.kind]
                trace.finished_at = event.ts
                trace.error = end.error
                if isinstance(end, RunEndData):
                    trace.state = end.state or trace.state
            case NodeStartedData() as started if event.step_id:
                if step is None:
                    step = Step(
                        step_id=event.step_id,
                        node=event.node or "",
                        iteration=started.iteration,
                        index=started.index,
                        is_map_item=started.map,
                        queued_at=started.queued_at,
                        started_at=event.ts,
                        after=started.after,
                        inputs=started.inputs,
                        worker=event.sender,
                    )
                    steps[event.step_id] = step
                    trace.steps.append(step)
                else:  # redelivered (a crash, or a pause): same step, another attempt
                    step.attempts += 1
                    step.worker = event.sender
            case NodeRetryData() if step is not None:
                step.retries += 1
            case NodeFinishedData() as finished if step is not None:
                step.status = "succeeded"
                step.finished_at = event.ts
                step.duration_ms = _took(finished.duration_ms, step, event)
                step.attempts = max(step.attempts, finished.attempts)
                step.outputs = finished.outputs
            case NodeDiscardedData() as discarded if step is not None:
                step.status = "discarded"
                step.finished_at = event.ts
                step.duration_ms = _took(discarded.duration_ms, step, event)
            case NodeFailedData() as failed if step is not None:
                step.status = "failed"
                step.finished_at = event.ts
                step.duration_ms = (event.ts - step.started_at) * 1000
                step.error = failed.error
            case LLMCalledData() as called:
                pending_llm.setdefault(event.step_id or "", []).append((event, called))
            case LLMFinishedData() as answered:
                call = _llm_call(event, answered, pending_llm.setdefault(event.step_id or "", []))
                (step.llm_calls if step is not None else trace.llm_calls).append(call)
            case ToolCalledData() as asked if step is not None:
                tool = ToolCall(tool=asked.tool, call_id=asked.call_id, started_at=event.ts, arguments=asked.arguments)
                pending_tools[(step.step_id, tool.call_id)] = tool
                step.tool_calls.append(tool)
            case ToolFinishedData() as done if step is not None:
                key = (step.step_id, done.call_id)
                if key in pending_tools:
                    tool = pending_tools.pop(key)
                else:
                    tool = ToolCall(tool=done.tool, call_id=done.call_id, started_at=event.ts)
                    step.tool_calls.append(tool)
                tool.finished_at = event.ts
                tool.result = done.result
                tool.error = done.error
                tool.actor = done.actor
    if trace is None:
        raise ValueError("a run without events")
    return trace


def _took(duration_ms: float | None, step: Step, event: Event) -> float:
    """The duration a step's end event says, or the time since it started."""
    return duration_ms if duration_ms is not None else (event.ts - step.started_at) * 1000


def _llm_call(finished: Event, answered: LLMFinishedData, called: list[tuple[Event, LLMCalledData]]) -> LLMCall:
    """Pair an ``llm.finished`` with its ``llm.called`` (same ``call`` id; else the step's earliest unanswered)."""
    latency_s = answered.latency_ms / 1000
    if answered.call is not None:
        start = next((pair for pair in called if pair[1].call == answered.call), None)
    else:  # events of a version that did not number its calls
        start = called[0] if called else None
    if start is not None:
        called.remove(start)
    started_at = start[0].ts if start is not None else finished.ts - latency_s
    return LLMCall(
        model=answered.model or (start[1].model if start is not None else "") or "unknown",
        started_at=started_at,
        finished_at=max(finished.ts, started_at),
        ok=answered.ok,
        tokens_in=answered.tokens_in,
        tokens_out=answered.tokens_out,
        cost_usd=answered.cost_usd,
        error=answered.error,
        cache_hit=answered.cache_hit,
        messages=start[1].messages if start is not None else None,
        content=answered.content,
        tool_calls=list(answered.tool_calls),
    )
