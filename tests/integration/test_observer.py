"""The observer: ended runs become MLflow traces (real SQLite tracking store) and rows of run history."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.cli.console import cancel_run
from actors.launch.stack import LocalStack
from actors.observer.mlflow_sink import RUN_TAG
from actors.observer.summary import summarize
from bus import Bus, Event
from configs import Settings
from store import open_store
from tests.conftest import SEEDS
from tests.fakes.openai_server import FakeOpenAI, ToolCallsReply, serve
from tests.helpers import EventLog, linear_flow, plans, run_flow, start_run, trigger, write_flow, write_script
from tests.support.observer import mlflow_traces, traced

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

REVIEW_SCRIPT = {
    "plan": [{"angles": ["history", "design", "future"]}],
    "research": [{"note": "note about {item} ({index})"}],
    "write": [{"draft": "draft 0"}],
    "score": [{"score": 0.5}],
    "revise": [{"draft": "draft 1", "approved": False}, {"draft": "draft 2", "approved": True}],
    "publish": [{"summary": "summary of {state.draft}"}],
}

KEY_ENV = "CA_TEST_OBSERVER_KEY"
SECRET = "sk-observer-0123456789abcdefSECRET"

AGENT = """
schema_version: "1.0"
flow: {name: priced}
state:
  fields:
    question: {type: str, required: true}
    answer: {type: str, default: ""}
nodes:
  - id: solve
    prompt: "Answer with the help of your tools: {state.question}"
    tools: [calculator]
    outputs: [answer]
    output_schema: {type: object, fields: [{name: answer, type: str}]}
edges: [{from: START, to: solve}, {from: solve, to: END}]
config:
  llm:
    model: openai/gpt-4o-mini
    api_base: "API_BASE"
    api_key_env: KEY_ENV
"""


async def trigger_from_chat(bus: Bus, flow: str, inputs: dict[str, Any], session: str) -> str:
    """Start a run the way a chat gateway does: with a source and a conversation id in the headers."""
    answer = await trigger(bus, flow, inputs, headers={"Ca-Source": "telegram", "Ca-Session": session})
    assert answer.run_id is not None, answer
    return answer.run_id


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    yield from serve(default_content='{"answer": "default"}')


async def test_a_run_becomes_one_trace_with_a_span_per_step_and_llm_spans_with_tokens(
    settings: Settings, tmp_path: Path
) -> None:
    script = write_script(tmp_path / "script.yaml", REVIEW_SCRIPT)
    s = traced(settings, tmp_path, llm_override="mock", mock_script=script)
    async with LocalStack(s, plans(SEEDS / "review_loop.yaml"), embedded=False) as stack:
        assert stack.client is not None
        assert stack.observer is not None
        run_id = await trigger_from_chat(stack.client, "review_loop", {"topic": "actors"}, session="chat-42")
        assert await stack.observer.observed(run_id, timeout_s=60)

    traces = await asyncio.to_thread(mlflow_traces, s)
    assert len(traces) == 1
    trace = traces[0]
    tags = trace.info.tags
    assert tags[RUN_TAG] == run_id
    assert tags["ca.flow"] == "review_loop"
    assert tags["ca.source"] == "telegram"
    assert tags["ca.status"] == "succeeded"
    assert tags["ca.plan_version"]
    assert trace.info.trace_metadata["mlflow.trace.session"] == "chat-42"
    spans = trace.data.spans
    names = [sp.name for sp in spans]
    assert names[0] == "review_loop"
    # Map items carry their index, loop repeats their iteration.
    assert {"research [0]", "research [1]", "research [2]"} <= set(names)
    assert {"revise", "revise (iteration 1)"} <= set(names)
    chat = [sp for sp in spans if sp.span_type == "CHAT_MODEL"]
    steps = [sp for sp in spans if sp.parent_id == spans[0].span_id]
    assert len(chat) == len(steps) == 9  # plan, 3 research, write, score, 2 revise, publish
    assert all(sp.attributes["mlflow.chat.tokenUsage"]["total_tokens"] > 0 for sp in chat)
    assert all(sp.attributes["mlflow.llm.model"] == "mock" for sp in chat)
    # Spans keep the times the events recorded, nested inside their parents.
    root = spans[0]
    for sp in steps:
        assert root.start_time_ns <= sp.start_time_ns <= sp.end_time_ns <= root.end_time_ns
    assert trace.data.spans[0].outputs["summary"] == "summary of draft 2"

    async with open_store(s.store()) as st:
        history = await st.get_run(run_id)
    assert history is not None
    assert history.status == "succeeded"
    assert (history.source, history.session) == ("telegram", "chat-42")
    assert len(history.steps) == 9
    assert history.tokens_in == sum(sp.attributes["mlflow.chat.tokenUsage"]["input_tokens"] for sp in chat)
    by_step = {row["step_id"]: row for row in history.steps}
    write = next(row for row in history.steps if row["node"] == "write")
    # `after` links each step to the one that queued it: `write` waited for the last research item.
    assert by_step[write["after"]]["node"] == "research"
    assert all(row["queue_ms"] is not None and row["queue_ms"] >= 0 for row in history.steps)


async def test_llm_cost_and_tool_calls_reach_the_trace_and_the_history(
    fake: FakeOpenAI, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, litellm_state: None
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    flow = write_flow(tmp_path / "priced.yaml", AGENT.replace("API_BASE", fake.api_base).replace("KEY_ENV", KEY_ENV))
    fake.script(ToolCallsReply((("calculator", {"expression": "6*7"}),)), json.dumps({"answer": f"42 {SECRET}"}))
    s = traced(settings, tmp_path)
    async with LocalStack(s, plans(flow), embedded=False) as stack:
        assert stack.client is not None
        assert stack.observer is not None
        result = await run_flow(stack.client, "priced", {"question": "six times seven?"})
        assert result["status"] == "succeeded", result
        assert await stack.observer.observed(result["run_id"], timeout_s=60)

    (trace,) = await asyncio.to_thread(mlflow_traces, s)
    chat = [sp for sp in trace.data.spans if sp.span_type == "CHAT_MODEL"]
    tools = [sp for sp in trace.data.spans if sp.span_type == "TOOL"]
    assert len(chat) == 2
    costs = [sp.attributes["mlflow.llm.cost"]["total_cost"] for sp in chat]
    assert all(c > 0 for c in costs), "the bundled price map knows gpt-4o-mini"
    assert [sp.name for sp in tools] == ["calculator"]
    assert tools[0].inputs == {"expression": "6*7"}
    assert tools[0].outputs["result"] == 42
    trace_cost = json.loads(trace.info.trace_metadata["mlflow.trace.cost"])["total_cost"]
    assert trace_cost == pytest.approx(sum(costs))
    # The model's answer held the API key: it is in the run's state, but never in the trace.
    assert SECRET not in json.dumps([sp.to_dict() for sp in trace.data.spans], default=str)
    assert "[REDACTED]" in chat[1].outputs["content"]

    async with open_store(s.store()) as st:
        history = await st.get_run(result["run_id"])
    assert history is not None
    assert history.cost_usd == pytest.approx(sum(costs))
    (step,) = history.steps
    assert (step["llm_calls"], step["tool_calls"]) == (2, 1)
    assert step["models"]["gpt-4o-mini"]["calls"] == 2
    assert step["llm_ms"] > 0


async def test_without_log_prompts_traces_keep_timings_and_tokens_but_no_content(
    settings: Settings, tmp_path: Path
) -> None:
    script = write_script(tmp_path / "script.yaml", REVIEW_SCRIPT)
    s = traced(settings, tmp_path, llm_override="mock", mock_script=script, log_prompts=False)
    async with LocalStack(s, plans(SEEDS / "review_loop.yaml"), embedded=False) as stack:
        assert stack.client is not None
        assert stack.observer is not None
        result = await run_flow(stack.client, "review_loop", {"topic": "private topic"})
        assert await stack.observer.observed(result["run_id"], timeout_s=60)
    (trace,) = await asyncio.to_thread(mlflow_traces, s)
    dumped = json.dumps([sp.to_dict() for sp in trace.data.spans], default=str)
    assert "private topic" not in dumped
    assert all(sp.inputs is None for sp in trace.data.spans)
    assert sum(1 for sp in trace.data.spans if sp.span_type == "CHAT_MODEL") == 9


async def test_a_step_still_running_when_its_run_is_cancelled_is_counted_in_the_history(
    settings: Settings, tmp_path: Path
) -> None:
    flow = write_flow(tmp_path / "f.yaml", linear_flow("cancellable", ["a", "b"]))
    s = settings.model_copy(update={"llm_override": "mock/500ms"})
    async with LocalStack(s, plans(flow), embedded=False) as stack:
        bus = stack.client
        assert bus is not None
        assert stack.observer is not None
        log = await EventLog().start(bus)
        run_id = await start_run(bus, "cancellable", {"topic": "t"})
        await log.wait_for("llm.called", run_id=run_id)
        await cancel_run(bus, run_id)
        await log.wait_for("node.discarded", run_id=run_id)
        assert await stack.observer.observed(run_id, timeout_s=30)
        async with open_store(s.store()) as st:
            history = await st.get_run(run_id)
    assert history is not None
    assert history.status == "cancelled"
    (step,) = history.steps
    assert step["status"] == "discarded"
    assert step["llm_calls"] == 1  # the call made after the run was cancelled is not lost
    assert history.llm_calls == 1
    assert step["finished_at"] > history.finished_at


def _event(kind: str, ts: float, step: str | None = None, **data: Any) -> Event:
    node = step.split(".")[1] if step else None
    return Event(kind=kind, run_id="r", flow="f", node=node, step_id=step, ts=ts, data=data)  # type: ignore[arg-type]


def test_summarize_folds_a_redelivered_step_and_pairs_llm_calls_in_order() -> None:
    events = [
        _event("run.started", 100.0, plan_version="v1", inputs={"q": 1}, source="cli"),
        _event("node.started", 100.5, "r.a.0.0", queued_at=100.1, iteration=0, index=0),
        _event("llm.called", 100.6, "r.a.0.0", model="m"),
        # the worker died here; the step is redelivered and runs again
        _event("node.started", 131.0, "r.a.0.0", queued_at=100.1, iteration=0, index=0),
        _event("llm.finished", 101.0, "r.a.0.0", model="m", tokens_in=3, tokens_out=4, cost_usd=0.5, latency_ms=400),
        _event("llm.called", 131.1, "r.a.0.0", model="m"),
        _event("llm.finished", 132.0, "r.a.0.0", model="m", tokens_in=3, tokens_out=5, cost_usd=0.25, latency_ms=900),
        _event("node.finished", 132.1, "r.a.0.0", duration_ms=1100.0, attempts=1, outputs={"x": 1}),
        _event("node.started", 132.3, "r.b.0.0", queued_at=132.2, after="r.a.0.0"),
        _event("node.failed", 133.3, "r.b.0.0", error="boom"),
        _event("run.failed", 133.4, error="boom", state={"x": 1}),
        _event("run.failed", 133.5, error="again"),
    ]
    trace = summarize(events)
    assert (trace.status, trace.error, trace.finished_at) == ("failed", "boom", 133.4)
    a = trace.steps[0]
    assert (a.attempts, a.status, a.outputs) == (2, "succeeded", {"x": 1})
    assert [round(c.latency_ms) for c in a.llm_calls] == [400, 900]
    history = trace.history()
    assert (history.cost_usd, history.tokens_out, history.llm_calls) == (0.75, 9, 2)
    row_a, row_b = history.steps
    assert row_a["queue_ms"] == pytest.approx(400.0)
    assert row_a["models"] == {"m": {"calls": 2, "tokens_in": 6, "tokens_out": 9, "cost_usd": 0.75, "llm_ms": 1300.0}}
    assert (row_b["after"], row_b["status"], row_b["error"]) == ("r.a.0.0", "failed", "boom")
    assert row_b["duration_ms"] == pytest.approx(1000.0)


@pytest.fixture
def info_logs() -> Iterator[None]:
    """Logging configured as the CLI does, at info level; structlog's defaults restored afterwards."""
    import logging

    import structlog

    from actors.runtime.logs import configure_logging

    handlers = logging.getLogger().handlers[:]
    configure_logging("info", "json")
    yield
    structlog.reset_defaults()
    logging.getLogger().handlers[:] = handlers


@pytest.mark.usefixtures("info_logs")
async def test_log_lines_of_a_run_are_also_events_of_the_run(settings: Settings, tmp_path: Path) -> None:
    s = settings.model_copy(update={"llm_override": "mock"})
    async with LocalStack(s, plans(SEEDS / "echo.yaml"), embedded=False) as stack:
        assert stack.client is not None
        log = await EventLog().start(stack.client)
        result = await run_flow(stack.client, "echo", {"message": "hello"})
        await log.wait_for("log", count=2, timeout_s=10)  # at least run.started and run.finished
    lines = log.of("log")
    assert {"run.started", "run.finished"} <= {e.data.message for e in lines}
    assert all(e.run_id == result["run_id"] for e in lines)
    started = next(e for e in lines if e.data.message == "run.started")
    assert started.flow == "echo"
    assert started.data.level == "info"
    assert started.sender.startswith("scheduler")


SEED_TRACED = """
schema_version: "1.0"
flow: {name: seed_traced}
state:
  fields:
    topic: {type: str, required: true}
    note: {type: str, default: ""}
nodes:
  - {id: write, prompt: "Write about {state.topic}", outputs: [note]}
edges: [{from: START, to: write}, {from: write, to: END}]
config:
  observability:
    mlflow: {enabled: true, tracking_uri: "TRACKING", experiment_name: seed-experiment}
"""


async def test_a_flow_whose_observability_block_enables_mlflow_is_traced_to_its_uri_and_experiment(
    settings: Settings, tmp_path: Path
) -> None:
    uri = f"sqlite:///{tmp_path / 'flow-mlflow.db'}"
    flow = write_flow(tmp_path / "seed_traced.yaml", SEED_TRACED.replace("TRACKING", uri))
    # The operator did not ask for traces (as `ca-actors run` without --trace): the flow's block does.
    s = settings.model_copy(update={"traces": False, "llm_override": "mock"})
    async with LocalStack(s, plans(flow), embedded=False) as stack:
        assert stack.client is not None
        assert stack.observer is not None
        result = await run_flow(stack.client, "seed_traced", {"topic": "bees"})
        assert result["status"] == "succeeded"
        assert await stack.observer.observed(result["run_id"], timeout_s=60)
    flow_settings = s.model_copy(update={"mlflow_tracking_uri": uri, "mlflow_experiment": "seed-experiment"})
    (trace,) = await asyncio.to_thread(mlflow_traces, flow_settings)
    assert trace.info.tags[RUN_TAG] == result["run_id"]


async def test_a_flow_whose_mlflow_block_is_disabled_is_not_traced_even_with_traces_on(
    settings: Settings, tmp_path: Path
) -> None:
    s = traced(settings, tmp_path, llm_override="mock")
    body = SEED_TRACED.replace(
        '{enabled: true, tracking_uri: "TRACKING", experiment_name: seed-experiment}', "{enabled: false}"
    )
    flow = write_flow(tmp_path / "seed_untraced.yaml", body.replace("seed_traced", "seed_untraced"))
    other = write_flow(tmp_path / "plain.yaml", linear_flow("plain", ["a"]))
    async with LocalStack(s, plans(flow, other), embedded=False) as stack:
        assert stack.client is not None
        assert stack.observer is not None
        untraced = await run_flow(stack.client, "seed_untraced", {"topic": "bees"})
        plain = await run_flow(stack.client, "plain", {"topic": "bees"})
        assert await stack.observer.observed(untraced["run_id"], timeout_s=60)
        assert await stack.observer.observed(plain["run_id"], timeout_s=60)
    traces = await asyncio.to_thread(mlflow_traces, s)
    assert [t.info.tags[RUN_TAG] for t in traces] == [plain["run_id"]]
