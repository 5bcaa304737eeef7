"""Writes a finished run (`actors.observer.summary.RunTrace`) as one MLflow trace. Only the observer imports this.

One trace per run: a root span for the run (inputs, final state), a span per step (``node (iteration
i) [index]``), a ``CHAT_MODEL`` span per LLM call with ``mlflow.chat.tokenUsage`` and ``mlflow.llm.cost``
attributes, and a ``TOOL`` span per tool call. Spans carry the times the events recorded, so the trace
shows the run as it happened, not as the observer saw it. A run is traced once: the trace carries the
tag ``ca.run_id``, looked up before writing.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from actors.observer.summary import LLMCall, RunTrace, Step, ToolCall
from actors.runtime.redact import Redactor
from actors.tracking import experiment_id, import_mlflow
from configs import Settings
from configs.errors import ActorError

if TYPE_CHECKING:
    from mlflow.entities import LiveSpan

RUN_TAG = "ca.run_id"
# What MLflow hands out instead of a trace when it could not start one.
_NO_OP_TRACE = "MLFLOW_NO_OP_SPAN_TRACE_ID"
_NS = 1_000_000_000


def _ns(ts: float) -> int:
    return int(ts * _NS)


class MlflowSink:
    """Writes run traces to one MLflow tracking store and experiment. Blocking: call from a thread."""

    def __init__(self, settings: Settings) -> None:
        self._module: Any = None
        self._uri = settings.mlflow_uri()
        self._experiment_name = settings.mlflow_experiment
        self._log_prompts = settings.log_prompts
        self._redact = Redactor()
        self._experiments: dict[tuple[str, str], str] = {}
        # MLflow's tracking URI is global to the process: one write at a time.
        self._lock = threading.Lock()

    @property
    def _mlflow(self) -> Any:
        """MLflow, imported at the first trace (in the observer's writer thread), not at start-up."""
        if self._module is None:
            self._module = import_mlflow()
        return self._module

    def _experiment(self, uri: str, name: str) -> str:
        key = (uri, name)
        if key not in self._experiments:
            self._experiments[key] = experiment_id(self._mlflow, uri, name)
        self._mlflow.set_tracking_uri(uri)
        return self._experiments[key]

    def find(self, run_id: str, tracking_uri: str | None = None, experiment: str | None = None) -> str | None:
        """The id of the trace of `run_id`, if it was written already."""
        with self._lock:
            return self._find(run_id, self._experiment(tracking_uri or self._uri, experiment or self._experiment_name))

    def _find(self, run_id: str, experiment: str) -> str | None:
        found = self._mlflow.search_traces(
            locations=[experiment],
            filter_string=f"tag.`{RUN_TAG}` = '{run_id}'",
            return_type="list",
            max_results=1,
        )
        return str(found[0].info.trace_id) if found else None

    def write(self, trace: RunTrace, tracking_uri: str | None = None, experiment: str | None = None) -> str:
        """Write the trace of an ended run (once) and return its MLflow trace id.

        `tracking_uri` and `experiment` (the flow's ``config.observability.mlflow``) replace the sink's own.
        """
        with self._lock:
            return self._write(trace, self._experiment(tracking_uri or self._uri, experiment or self._experiment_name))

    def _write(self, trace: RunTrace, experiment: str) -> str:
        existing = self._find(trace.run_id, experiment)
        if existing is not None:
            return existing
        mlflow = self._mlflow
        from mlflow.entities import SpanStatusCode, SpanType
        from mlflow.tracing.constant import SpanAttributeKey, TraceMetadataKey

        tags = {RUN_TAG: trace.run_id, "ca.flow": trace.flow, "ca.status": trace.status}
        if trace.plan_version:
            tags["ca.plan_version"] = trace.plan_version
        if trace.source:
            tags["ca.source"] = trace.source
        metadata = {TraceMetadataKey.TRACE_SESSION: trace.session} if trace.session else None
        root = mlflow.start_span_no_context(
            trace.flow,
            span_type=SpanType.CHAIN,
            inputs=self._io(trace.inputs),
            attributes={"ca.run_id": trace.run_id, "ca.flow": trace.flow},
            tags=tags,
            metadata=metadata,
            experiment_id=experiment,
            start_time_ns=_ns(trace.created_at),
        )
        if root.trace_id == _NO_OP_TRACE:
            raise ActorError("MLflow did not start the trace (its log says why)", run_id=trace.run_id)
        end = trace.finished_at or trace.created_at
        for step in trace.steps:
            self._step(root, step, SpanType, SpanAttributeKey, SpanStatusCode)
            if step.finished_at is not None:
                end = max(end, step.finished_at)
        for call in trace.llm_calls:
            self._llm(root, call, SpanType, SpanAttributeKey, SpanStatusCode)
        if trace.error:
            root.set_status(SpanStatusCode.ERROR)
            root.set_attribute("ca.error", self._redact(trace.error))
        root.end(outputs=self._io(trace.state), end_time_ns=_ns(end))
        mlflow.flush_trace_async_logging()
        return str(root.trace_id)

    def _io(self, value: Any) -> Any:
        return self._redact(value) if self._log_prompts else None

    def _step(self, root: LiveSpan, step: Step, span_type: Any, keys: Any, codes: Any) -> None:
        mlflow = self._mlflow
        attributes: dict[str, Any] = {
            "ca.step_id": step.step_id,
            "ca.node": step.node,
            "ca.iteration": step.iteration,
            "ca.index": step.index,
            "ca.attempts": step.attempts,
            "ca.worker": step.worker,
            "ca.cost_usd": step.cost_usd,
        }
        if step.queued_at is not None:
            attributes["ca.queue_ms"] = round(max(0.0, step.started_at - step.queued_at) * 1000, 3)
        span = mlflow.start_span_no_context(
            step.label,
            span_type=span_type.AGENT if step.tool_calls else span_type.CHAIN,
            parent_span=root,
            inputs=self._io(step.inputs),
            attributes=attributes,
            start_time_ns=_ns(step.started_at),
        )
        end = step.finished_at or step.started_at
        for call in step.llm_calls:
            self._llm(span, call, span_type, keys, codes)
            end = max(end, call.finished_at)
        for tool in step.tool_calls:
            self._tool(span, tool, span_type, codes)
            end = max(end, tool.finished_at or tool.started_at)
        if step.status == "failed":
            span.set_status(codes.ERROR)
            span.set_attribute("ca.error", self._redact(step.error or "failed"))
        span.end(outputs=self._io(step.outputs), end_time_ns=_ns(end))

    def _llm(self, parent: LiveSpan, call: LLMCall, span_type: Any, keys: Any, codes: Any) -> None:
        attributes: dict[str, Any] = {
            keys.CHAT_USAGE: {
                "input_tokens": call.tokens_in,
                "output_tokens": call.tokens_out,
                "total_tokens": call.tokens_in + call.tokens_out,
            },
            # Only the total is known (the gateway prices a call as a whole with litellm).
            keys.LLM_COST: {"input_cost": 0.0, "output_cost": 0.0, "total_cost": call.cost_usd},
            keys.MODEL: call.model,
            "ca.cost_usd": call.cost_usd,
            "ca.cache_hit": call.cache_hit,
        }
        span = self._mlflow.start_span_no_context(
            call.model,
            span_type=span_type.CHAT_MODEL,
            parent_span=parent,
            inputs={"messages": self._io(call.messages)} if self._log_prompts else None,
            attributes=attributes,
            start_time_ns=_ns(call.started_at),
        )
        if not call.ok:
            span.set_status(codes.ERROR)
            span.set_attribute("ca.error", self._redact(call.error or "failed"))
        outputs = (
            {"content": self._io(call.content), "tool_calls": self._io(call.tool_calls)} if self._log_prompts else None
        )
        span.end(outputs=outputs, end_time_ns=_ns(call.finished_at))

    def _tool(self, parent: LiveSpan, tool: ToolCall, span_type: Any, codes: Any) -> None:
        attributes: dict[str, Any] = {"ca.tool": tool.tool, "ca.call_id": tool.call_id}
        if tool.actor:
            attributes["ca.actor"] = tool.actor
        span = self._mlflow.start_span_no_context(
            tool.tool,
            span_type=span_type.TOOL,
            parent_span=parent,
            inputs=self._io(tool.arguments),
            attributes=attributes,
            start_time_ns=_ns(tool.started_at),
        )
        if tool.error:
            span.set_status(codes.ERROR)
            span.set_attribute("ca.error", self._redact(tool.error))
        span.end(outputs=self._io(tool.result), end_time_ns=_ns(tool.finished_at or tool.started_at))
