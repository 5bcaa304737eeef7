"""What each kind of run event says: one model per kind for the event's ``data``.

An event on ``ca.evt.<run>.<kind>`` is ``{"kind": "node.finished", "run_id": ..., "data": {...}}``; the
envelope is `bus.envelope.Event`, its ``data`` the model of its kind here (`DATA_OF_KIND`). Events stay
in the CA_EVENTS stream for 7 days and may come from another version, so reading is lenient: unknown
keys are ignored and most fields have a default (what the readers assumed when a key was missing).
The JSON is the one emitters always wrote; fields in `omit_defaults` appear only when they are set.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, get_args

from pydantic import Field

from bus.wire import SparseWireModel, WireModel

EventKind = Literal[
    "run.started",
    "run.finished",
    "run.failed",
    "run.rejected",
    "run.cancelled",
    "node.started",
    "node.finished",
    "node.failed",
    "node.retry",
    "node.waiting",
    # The step finished after its run had ended (cancelled, timed out): its outputs were not used.
    "node.discarded",
    "tool.called",
    "tool.finished",
    "llm.called",
    "llm.finished",
    # A log line of an actor about the run (level, message, fields).
    "log",
]
TERMINAL_EVENTS: frozenset[str] = frozenset({"run.finished", "run.failed", "run.rejected", "run.cancelled"})

# Why a step is tried again: the node's `retry.on` kinds, and memory being unavailable.
RetryKind = Literal["bad_output", "llm_error", "timeout", "memory"]


class EventData(WireModel):
    """The ``data`` of an event; each subclass is the data of one `KIND`."""

    KIND: ClassVar[EventKind]


class _SparseEventData(EventData, SparseWireModel):
    """Event data whose JSON leaves out fields at their default (`omit_defaults`)."""


# --- runs -----------------------------------------------------------------------------------------


class RunStartedData(_SparseEventData):
    """A run was created: its plan, inputs and where the trigger came from."""

    KIND = "run.started"
    omit_defaults = frozenset({"session"})

    plan_version: str = ""
    inputs: Any = None
    # The trigger's ``Ca-Source`` header (``nats`` when it had none) and ``Ca-Session``.
    source: str | None = None
    session: str | None = None


class RunEndData(_SparseEventData):
    """A run reached a final status (one of the three kinds below)."""

    omit_defaults = frozenset({"error"})

    status: str = ""
    duration_ms: float | None = None
    state: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None


class RunFinishedData(RunEndData):
    KIND = "run.finished"


class RunFailedData(RunEndData):
    KIND = "run.failed"


class RunCancelledData(RunEndData):
    KIND = "run.cancelled"


class RunRejectedData(EventData):
    """The trigger could not start a run (unknown flow, bad inputs): why."""

    KIND = "run.rejected"

    error: str | None = None


# --- steps ----------------------------------------------------------------------------------------


class NodeStartedData(EventData):
    """A step started (again, on a redelivery): where it sits, what queued it, the state it saw."""

    KIND = "node.started"

    iteration: int = 0
    index: int = 0
    # A map item (then `inputs` is {"item": ..., "state": ...}).
    map: bool = False
    delivery: int = 1
    # When its work item was published, and the step whose completion published it.
    queued_at: float | None = None
    after: str | None = None
    inputs: Any = None


class NodeFinishedData(EventData):
    """A step succeeded: its outputs."""

    KIND = "node.finished"

    outputs: dict[str, Any] = Field(default_factory=dict)
    duration_ms: float | None = None
    attempts: int = 1
    iteration: int = 0
    index: int = 0


class NodeFailedData(EventData):
    """A step failed for good; `on_error` names the node the run goes on with, if any."""

    KIND = "node.failed"

    error: str = ""
    on_error: str | None = None


class NodeRetryData(EventData):
    """A step will be tried again (`attempt` is the one that failed)."""

    KIND = "node.retry"

    attempt: int = 0
    error: str = ""
    kind: RetryKind


class NodeWaitingData(_SparseEventData):
    """A step cannot run yet: no live worker serves it, or its budget is exhausted (`budget`, a pause)."""

    KIND = "node.waiting"
    omit_defaults = frozenset({"budget"})

    reason: str = ""
    budget: bool = False


class NodeDiscardedData(EventData):
    """A step finished after its run had ended: its outputs were not used."""

    KIND = "node.discarded"

    duration_ms: float | None = None


# --- calls ----------------------------------------------------------------------------------------


class ToolCalledData(EventData):
    """An agent node called a tool."""

    KIND = "tool.called"

    tool: str = ""
    arguments: dict[str, Any] = Field(default_factory=dict)
    call_id: str = ""


class ToolFinishedData(_SparseEventData):
    """A tool call returned `result`, or failed with `error` (then there is no ``result`` key)."""

    KIND = "tool.finished"
    omit_defaults = frozenset({"actor"})

    tool: str = ""
    call_id: str = ""
    duration_ms: float = 0.0
    error: str | None = None
    # The actor the tool ran on, for a tool pinned to one.
    actor: str | None = None
    result: Any = None

    def _on_the_wire(self, data: dict[str, Any]) -> dict[str, Any]:
        data = super()._on_the_wire(data)
        if self.error is not None:
            data.pop("result", None)
        return data


class LLMCalledData(EventData):
    """The gateway was asked for a completion (`call` pairs it with its ``llm.finished``)."""

    KIND = "llm.called"

    call: str | None = None
    model: str = ""
    attempt: int = 0
    # The chat messages, each clipped so an event stays under NATS's payload limit.
    messages: list[dict[str, Any]] = Field(default_factory=list)


class LLMFinishedData(EventData):
    """The gateway answered: usage, cost, latency and the (clipped) answer, or the error."""

    KIND = "llm.finished"

    call: str | None = None
    model: str = ""
    ok: bool = True
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    cache_hit: bool = False
    # Names of the tools the model asked for.
    tool_calls: list[str] = Field(default_factory=list)
    content: str = ""
    error: str | None = None


class LogData(EventData):
    """A log line of an actor about the run."""

    KIND = "log"

    level: str = "info"
    message: str = ""
    fields: dict[str, Any] = Field(default_factory=dict)


AnyEventData = (
    RunStartedData
    | RunFinishedData
    | RunFailedData
    | RunCancelledData
    | RunRejectedData
    | NodeStartedData
    | NodeFinishedData
    | NodeFailedData
    | NodeRetryData
    | NodeWaitingData
    | NodeDiscardedData
    | ToolCalledData
    | ToolFinishedData
    | LLMCalledData
    | LLMFinishedData
    | LogData
)

DATA_OF_KIND: dict[str, type[AnyEventData]] = {cls.KIND: cls for cls in get_args(AnyEventData)}
assert set(DATA_OF_KIND) == set(get_args(EventKind)), "every event kind has its data model"
