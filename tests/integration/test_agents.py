"""Agent nodes with tools, gateway retries and fallbacks, structured outputs, cassettes, budgets."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from actors.flow.llm import ChatMessage, LLMReply, LLMRequest
from actors.launch.stack import LocalStack
from actors.llm.backend import LLMBackend, provider_schema
from actors.llm.cassette import Cassette
from configs import Settings
from tests.fakes.openai_server import ErrorReply, FakeOpenAI, ToolCallsReply, serve
from tests.helpers import EventLog, plans, run_flow, trigger, write_flow, write_script
from tests.support.agents import agent_flow

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
pytestmark = [
    pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning"),
    pytest.mark.usefixtures("litellm_state"),
]

KEY_ENV = "CA_TEST_AGENT_KEY"


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    yield from serve(default_content='{"answer": "default"}')


async def test_an_agent_node_calls_two_tools_before_it_answers(settings: Settings, tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "s.yaml",
        {
            "solve": [
                {"tool_calls": [{"name": "calculator", "arguments": {"expression": "6*7"}}]},
                {"tool_calls": [{"name": "datetime_now", "arguments": {}}]},
                {"answer": "it is 42"},
            ]
        },
    )
    s = settings.model_copy(update={"llm_override": "mock", "mock_script": script})
    async with LocalStack(s, plans(agent_flow(tmp_path)), embedded=False) as stack:
        assert stack.client is not None
        log = await EventLog().start(stack.client)
        result = await run_flow(stack.client, "helper", {"question": "what is six times seven?"})
    assert result["status"] == "succeeded", result
    assert result["state"]["answer"] == "it is 42"
    called = [e.data.tool for e in log.of("tool.called")]
    assert called == ["calculator", "datetime_now"]
    finished = log.of("tool.finished")
    assert finished[0].data.result["result"] == 42
    assert finished[0].data.error is None
    assert len(log.of("llm.called")) == 3
    assert [e.data.tool_calls for e in log.of("llm.finished")] == [["calculator"], ["datetime_now"], []]


async def test_a_failing_tool_fails_the_node_unless_on_error_continue(settings: Settings, tmp_path: Path) -> None:
    bad_call = {"tool_calls": [{"name": "calculator", "arguments": {"expression": "__import__('os')"}}]}
    script = write_script(tmp_path / "s.yaml", {"solve": [bad_call, {"answer": "carried on"}]})
    s = settings.model_copy(update={"llm_override": "mock", "mock_script": script})
    strict = agent_flow(tmp_path, "[calculator]")
    async with LocalStack(s, plans(strict), embedded=False) as stack:
        assert stack.client is not None
        failed = await run_flow(stack.client, "helper", {"question": "q"})
    assert failed["status"] == "failed"
    assert "tool calculator failed" in failed["error"]
    lenient = agent_flow(tmp_path, "[{name: calculator, on_error: continue}]")
    async with LocalStack(s, plans(lenient), embedded=False) as stack:
        assert stack.client is not None
        carried = await run_flow(stack.client, "helper", {"question": "q2"})
    assert carried["status"] == "succeeded"
    assert carried["state"]["answer"] == "carried on"


async def test_tool_calls_are_bounded_by_max_tool_calls(settings: Settings, tmp_path: Path) -> None:
    again = {"tool_calls": [{"name": "calculator", "arguments": {"expression": "1+1"}}]}
    script = write_script(tmp_path / "s.yaml", {"solve": [again, again, again, {"answer": "enough"}]})
    s = settings.model_copy(update={"llm_override": "mock", "mock_script": script})
    async with LocalStack(s, plans(agent_flow(tmp_path, "[calculator]", max_calls=2)), embedded=False) as stack:
        assert stack.client is not None
        log = await EventLog().start(stack.client)
        result = await run_flow(stack.client, "helper", {"question": "q"})
    assert result["status"] == "succeeded"
    assert len(log.of("tool.called")) == 2, "the third tool call was not offered"


def _request(fake: FakeOpenAI, **kw: object) -> LLMRequest:
    fields: dict[str, object] = {
        "model": "openai/gpt-4o-mini",
        "messages": [ChatMessage(role="user", content="Say hello.")],
        "api_base": fake.api_base,
        "api_key_env": KEY_ENV,
        "timeout_s": 10.0,
    }
    fields.update(kw)
    return LLMRequest.model_validate(fields)


async def test_transient_errors_are_retried_then_fallbacks_are_tried(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test")
    backend = LLMBackend(backoff_s=0.01)
    fake.script(ErrorReply.server_error(), "second time lucky")
    retried = await backend.complete(_request(fake))
    assert retried.ok
    assert retried.content == "second time lucky"
    fake.script(ErrorReply.unauthorized(), "from the fallback")
    fell_back = await backend.complete(_request(fake, fallbacks=["openai/gpt-4o"]))
    assert fell_back.ok
    assert fell_back.content == "from the fallback"
    assert [r.model for r in fake.requests[2:]] == ["gpt-4o-mini", "gpt-4o"]
    fake.script(ErrorReply.unauthorized(), ErrorReply.unauthorized())
    both = await backend.complete(_request(fake, fallbacks=["openai/gpt-4o"]))
    assert not both.ok
    assert "every model failed (openai/gpt-4o-mini, openai/gpt-4o)" in (both.error or "")


async def test_the_output_schema_goes_to_the_provider_as_a_json_schema_response_format(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test")
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    reply = await LLMBackend().complete(_request(fake, output_schema=schema))
    assert reply.ok
    sent = fake.requests[-1].body["response_format"]
    assert sent["type"] == "json_schema"
    assert sent["json_schema"]["schema"]["properties"] == schema["properties"]


def test_gemini_gets_a_schema_without_the_keywords_it_refuses() -> None:
    schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"a": {"type": "object", "additionalProperties": False, "properties": {}}},
    }
    cleaned = provider_schema("gemini/gemini-2.5-flash", schema)
    assert "additionalProperties" not in json.dumps(cleaned)
    assert provider_schema("openai/gpt-4o-mini", schema) == schema


async def test_tool_calls_travel_in_the_openai_wire_format(
    settings: Settings, tmp_path: Path, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test")
    fake.script(ToolCallsReply(calls=(("calculator", {"expression": "2**10"}),)), '{"answer": "1024"}')
    flow = agent_flow(
        tmp_path,
        "[calculator]",
        extra=f"config:\n  llm: {{model: openai/gpt-4o-mini, api_base: '{fake.api_base}', api_key_env: {KEY_ENV}}}\n",
    )
    async with LocalStack(settings.model_copy(update={"llm_override": None}), plans(flow), embedded=False) as stack:
        assert stack.client is not None
        result = await run_flow(stack.client, "helper", {"question": "2 to the 10th?"})
    assert result["state"]["answer"] == "1024"
    first, second = fake.requests
    assert first.body["tools"][0]["function"]["name"] == "calculator"
    tool_turn = second.messages[-1]
    assert tool_turn["role"] == "tool"
    assert json.loads(tool_turn["content"])["result"] == 1024
    assert second.messages[-2]["tool_calls"][0]["function"]["name"] == "calculator"


async def test_a_recorded_cassette_replays_offline_and_refuses_unknown_requests(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-secret-value")
    path = tmp_path / "cassette.yaml"
    fake.script("recorded answer")
    request = _request(fake)
    other = _request(fake, messages=[ChatMessage(role="user", content="Something else")])
    recorded = await LLMBackend(cassette=Cassette(path, "record")).complete(request)
    assert recorded.ok
    text = path.read_text()
    assert "recorded answer" in text
    assert "sk-secret-value" not in text
    fake.close()
    replayer = LLMBackend(cassette=Cassette(path, "replay"))
    replayed = await replayer.complete(request)
    assert replayed.ok
    assert replayed.content == "recorded answer"
    assert replayed.cache_hit
    unknown = await replayer.complete(other)
    assert unknown.error_kind == "permanent"
    assert "not in cassette" in (unknown.error or "")
    assert "Something else" in (unknown.error or "")


async def test_a_cassette_written_before_error_kinds_still_replays(tmp_path: Path) -> None:
    request = LLMRequest(model="openai/gpt-4o-mini", messages=[ChatMessage(role="user", content="Say hello.")])
    # What earlier versions wrote: the reply with its `ok`, `unreachable` and `budget_exceeded` flags.
    old = {
        "ok": True,
        "content": "hello from the past",
        "tool_calls": [],
        "model": "gpt-4o-mini",
        "usage": {"prompt_tokens": 3, "completion_tokens": 4},
        "cost_usd": 0.001,
        "unreachable": False,
        "budget_exceeded": False,
    }
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump([{"key": request.cache_key(), "request": {"model": request.model}, "reply": old}]))

    replayed = await LLMBackend(cassette=Cassette(path, "replay")).complete(request)

    assert replayed.ok
    assert (replayed.content, replayed.usage.completion_tokens, replayed.cache_hit) == ("hello from the past", 4, True)


def test_replies_with_the_old_flags_read_as_error_kinds() -> None:
    assert LLMReply.model_validate({"ok": False, "retryable": True, "unreachable": True}).error_kind == "unreachable"
    assert LLMReply.model_validate({"ok": False, "retryable": True}).error_kind == "transient"
    assert LLMReply.model_validate({"ok": False, "budget_exceeded": True}).error_kind == "budget"
    assert LLMReply.model_validate({"ok": False, "error": "bad request"}).error_kind == "permanent"
    assert LLMReply.model_validate({"ok": True, "content": "x"}).ok


BUDGETED = """
schema_version: "1.0"
flow: {name: budgeted}
state:
  fields:
    topic: {type: str, required: true}
    a: {type: str, default: ""}
nodes:
  - {id: a, prompt: "Write about {topic}", outputs: [a], output_schema: {type: object, fields: [{name: a, type: str}]}}
edges: [{from: START, to: a}, {from: a, to: END}]
config:
  budget: BUDGET
"""


async def test_a_call_that_would_pass_the_budget_is_refused_before_it_is_made(
    settings: Settings, tmp_path: Path, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test")
    flow = write_flow(
        tmp_path / "b.yaml",
        BUDGETED.replace("BUDGET", "{max_cost_usd: 0.0000001}")
        + f"  llm: {{model: openai/gpt-4o-mini, api_base: '{fake.api_base}', api_key_env: {KEY_ENV}}}\n",
    )
    async with LocalStack(settings.model_copy(update={"llm_override": None}), plans(flow), embedded=False) as stack:
        assert stack.client is not None
        log = await EventLog().start(stack.client)
        result = await run_flow(stack.client, "budgeted", {"topic": "t"})
    assert result["status"] == "failed"
    assert "budget exceeded" in result["error"]
    assert "max_cost_usd" in result["error"]
    assert fake.requests == [], "nothing was sent to the provider"
    assert log.of("llm.finished")[0].data.ok is False


async def test_spending_is_counted_and_a_paused_run_waits_with_a_clear_event(
    settings: Settings, tmp_path: Path
) -> None:
    from actors.llm.budget import Budgets
    from bus import topology

    generous = write_flow(tmp_path / "g.yaml", BUDGETED.replace("BUDGET", "{max_tokens: 100000}"))
    async with LocalStack(settings.model_copy(update={"llm_override": "mock"}), plans(generous), embedded=False) as st:
        assert st.client is not None
        ok = await run_flow(st.client, "budgeted", {"topic": "t"})
        spend = await Budgets(st.client.kv(topology.BUDGETS)).spend(f"run.{ok['run_id']}")
    assert ok["status"] == "succeeded"
    assert spend.tokens > 0
    assert spend.reserved_tokens == 0, "the reservation was replaced by the real use"
    paused = write_flow(tmp_path / "p.yaml", BUDGETED.replace("BUDGET", "{max_tokens: 1, on_exceed: pause}"))
    async with LocalStack(settings.model_copy(update={"llm_override": "mock"}), plans(paused), embedded=False) as st:
        assert st.client is not None
        log = await EventLog().start(st.client)
        reply = (await trigger(st.client, "budgeted", {"topic": "t"})).model_dump()
        waiting = await log.wait_for("node.waiting", run_id=reply["run_id"])
        record = json.loads((await st.client.kv("ca_runs").get(reply["run_id"])).value or b"{}")
    assert waiting.data.reason.startswith("paused: budget exceeded")
    assert record["status"] == "running"


async def test_provider_limits_bound_concurrency_and_space_out_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from actors.llm.backend import ProviderLimits

    limits = ProviderLimits(concurrency=2, per_s=None)
    inside = peak = 0

    async def call(model: str) -> None:
        nonlocal inside, peak
        async with limits.slot(model):
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0.01)  # hold the slot, so the six calls overlap and the limit is what stops them
            inside -= 1

    await asyncio.gather(*(call("openai/gpt-4o-mini") for _ in range(6)))
    assert peak == 2
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def record(delay: float) -> None:
        slept.append(delay)
        await real_sleep(0)

    spaced = ProviderLimits(concurrency=10, per_s=10.0)
    monkeypatch.setattr(asyncio, "sleep", record)
    for _ in range(3):
        async with spaced.slot("anthropic/claude"):
            pass
    assert len(slept) == 2
    assert all(0.05 < d <= 0.2 for d in slept)


def test_unknown_tool_names_are_located_errors_with_a_suggestion(tmp_path: Path) -> None:
    from actors.flow import load_flows

    flow = agent_flow(tmp_path, "[calculator, {name: web_serch}]")
    flow_set = load_flows([flow])
    assert flow_set.plans == []
    [error] = flow_set.errors
    assert f"{flow}:" in error
    assert "nodes[0].tools[1].name: unknown tool 'web_serch'" in error
    assert "did you mean 'web_search'" in error


async def test_an_agent_runs_python_exec_on_the_worker_sandbox_and_a_refused_snippet_names_its_limit(
    settings: Settings, tmp_path: Path
) -> None:
    good = {"name": "python_exec", "arguments": {"code": "result = sum(inputs['xs']) * 2", "inputs": {"xs": [1, 2]}}}
    bad = {"name": "python_exec", "arguments": {"code": "import os\nresult = os.getcwd()"}}
    script = write_script(
        tmp_path / "s.yaml",
        {"solve": [{"tool_calls": [good]}, {"tool_calls": [bad]}, {"answer": "six"}]},
    )
    s = settings.model_copy(update={"llm_override": "mock", "mock_script": script})
    flow = agent_flow(tmp_path, "[{name: python_exec, on_error: continue}]")
    async with LocalStack(s, plans(flow), embedded=False) as stack:
        assert stack.client is not None
        log = await EventLog().start(stack.client)
        result = await run_flow(stack.client, "helper", {"question": "twice the sum of 1 and 2?"})
    assert result["status"] == "succeeded", result
    finished = log.of("tool.finished")
    assert finished[0].data.result == {"result": 6, "stdout": ""}
    assert finished[1].data.error is not None
    assert "policy: import of 'os' is not allowed" in finished[1].data.error
