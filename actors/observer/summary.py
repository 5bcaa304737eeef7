"""What happened in one run, rebuilt from its events: steps with their LLM and tool calls, timings and cost.

The observer turns a run's events (the CA_EVENTS stream keeps them) into a `RunTrace` once the run
has ended; the trace becomes an MLflow trace and, through `RunTrace.history`, the run's row in the
store, which `ca-actors report` reads. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bus import Event
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
    pending_llm: dict[str, list[Event]] = {}
    pending_tools: dict[tuple[str, str], ToolCall] = {}
    for event in events:
        if trace is None:
            trace = RunTrace(run_id=event.run_id, flow=event.flow, created_at=event.ts)
        data = event.data
        kind = event.kind
        step = steps.get(event.step_id) if event.step_id else None
        if kind == "run.started":
            trace.created_at = event.ts
            trace.plan_version = str(data.get("plan_version") or "")
            trace.inputs = data.get("inputs")
            trace.source = data.get("source")
            trace.session = data.get("session")
        elif kind in _END_STATUS:
            if trace.ended:
                continue  # a repeated announcement of the end
            trace.status = _END_STATUS[kind]
            trace.finished_at = event.ts
            trace.state = data.get("state") or trace.state
            trace.error = data.get("error")
            if kind == "run.rejected" and trace.inputs is None:
                trace.inputs = data.get("inputs")
        elif kind == "node.started" and event.step_id:
            if step is None:
                step = Step(
                    step_id=event.step_id,
                    node=event.node or "",
                    iteration=int(data.get("iteration", 0)),
                    index=int(data.get("index", 0)),
                    is_map_item=bool(data.get("map", False)),
                    queued_at=data.get("queued_at"),
                    started_at=event.ts,
                    after=data.get("after"),
                    inputs=data.get("inputs"),
                    worker=event.sender,
                )
                steps[event.step_id] = step
                trace.steps.append(step)
            else:  # redelivered (a crash, or a pause): same step, another attempt
                step.attempts += 1
                step.worker = event.sender
        elif kind == "node.retry" and step is not None:
            step.retries += 1
        elif kind == "node.finished" and step is not None:
            step.status = "succeeded"
            step.finished_at = event.ts
            step.duration_ms = data.get("duration_ms", (event.ts - step.started_at) * 1000)
            step.attempts = max(step.attempts, int(data.get("attempts", 1)))
            step.outputs = data.get("outputs")
        elif kind == "node.discarded" and step is not None:
            step.status = "discarded"
            step.finished_at = event.ts
            step.duration_ms = data.get("duration_ms", (event.ts - step.started_at) * 1000)
        elif kind == "node.failed" and step is not None:
            step.status = "failed"
            step.finished_at = event.ts
            step.duration_ms = (event.ts - step.started_at) * 1000
            step.error = data.get("error")
        elif kind == "llm.called":
            pending_llm.setdefault(event.step_id or "", []).append(event)
        elif kind == "llm.finished":
            call = _llm_call(event, pending_llm.setdefault(event.step_id or "", []))
            (step.llm_calls if step is not None else trace.llm_calls).append(call)
        elif kind == "tool.called" and step is not None:
            tool = ToolCall(
                tool=str(data.get("tool", "")),
                call_id=str(data.get("call_id", "")),
                started_at=event.ts,
                arguments=data.get("arguments"),
            )
            pending_tools[(step.step_id, tool.call_id)] = tool
            step.tool_calls.append(tool)
        elif kind == "tool.finished" and step is not None:
            key = (step.step_id, str(data.get("call_id", "")))
            if key in pending_tools:
                tool = pending_tools.pop(key)
            else:
                tool = ToolCall(tool=str(data.get("tool", "")), call_id=key[1], started_at=event.ts)
                step.tool_calls.append(tool)
            tool.finished_at = event.ts
            tool.result = data.get("result")
            tool.error = data.get("error")
            tool.actor = data.get("actor")
    if trace is None:
        raise ValueError("a run without events")
    return trace


def _llm_call(finished: Event, called: list[Event]) -> LLMCall:
    """Pair an ``llm.finished`` with its ``llm.called`` (same ``call`` id; else the step's earliest unanswered)."""
    data = finished.data
    latency_s = float(data.get("latency_ms") or 0.0) / 1000
    same = [e for e in called if "call" in data and e.data.get("call") == data["call"]]
    start = same[0] if same else (called[0] if called and "call" not in data else None)
    if start is not None:
        called.remove(start)
    started_at = start.ts if start is not None else finished.ts - latency_s
    return LLMCall(
        model=str(data.get("model") or (start.data.get("model") if start else "") or "unknown"),
        started_at=started_at,
        finished_at=max(finished.ts, started_at),
        ok=bool(data.get("ok", True)),
        tokens_in=int(data.get("tokens_in") or 0),
        tokens_out=int(data.get("tokens_out") or 0),
        cost_usd=float(data.get("cost_usd") or 0.0),
        error=data.get("error"),
        cache_hit=bool(data.get("cache_hit", False)),
        messages=start.data.get("messages") if start is not None else None,
        content=data.get("content"),
        tool_calls=list(data.get("tool_calls") or []),
    )
