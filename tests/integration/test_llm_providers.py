"""litellm's real Anthropic and Gemini code paths against local fakes of their wire formats, and the gateway's
retries honouring ``Retry-After`` / ``retry-after-ms`` (OpenAI too): chat, tool calls, structured output, errors.

Delays are checked as lower bounds from the fake's own arrival times (the provider asked for N s, so the
retry cannot arrive sooner), never as wall-clock upper bounds.
"""

from __future__ import annotations

import email.utils
import itertools
import json
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.flow.llm import ChatMessage, LLMRequest
from actors.launch.stack import LocalStack
from actors.llm.backend import LLMBackend
from configs import Settings
from tests.fakes.openai_server import ErrorReply, FakeOpenAI
from tests.fakes.providers import (
    FakeAnthropic,
    FakeGemini,
    Overloaded,
    RateLimited,
    Structured,
    ToolUse,
    Unavailable,
)
from tests.helpers import EventLog, plans, run_flow, write_flow

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

pytestmark = [
    pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning"),
    pytest.mark.usefixtures("litellm_state", "no_internet"),
]

CLAUDE = "anthropic/claude-3-5-haiku-20241022"
GEMINI = "gemini/gemini-2.0-flash"
ANTHROPIC_KEY_ENV, ANTHROPIC_KEY = "CA_TEST_ANTHROPIC_KEY", "sk-ant-fake-0123456789abcdef"
GEMINI_KEY_ENV, GEMINI_KEY = "CA_TEST_GEMINI_KEY", "AIzaFakeGeminiKey0123456789abcdefghijkl"
CALCULATOR = {
    "type": "function",
    "function": {
        "name": "calculator",
        "description": "Evaluate an arithmetic expression.",
        "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]},
    },
}
ANSWER_SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ANTHROPIC_KEY_ENV, ANTHROPIC_KEY)
    monkeypatch.setenv(GEMINI_KEY_ENV, GEMINI_KEY)


@pytest.fixture
def anthropic() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    with FakeGemini() as fake:
        yield fake


def _ask(model: str, api_base: str, key_env: str, **extra: Any) -> LLMRequest:
    return LLMRequest(
        model=model,
        messages=[
            ChatMessage(role="system", content="You answer briefly."),
            ChatMessage(role="user", content="What is two plus two?"),
        ],
        api_base=api_base,
        api_key_env=key_env,
        max_tokens=64,
        timeout_s=10.0,
        **extra,
    )


def _gaps(times: list[float]) -> list[float]:
    return [later - earlier for earlier, later in itertools.pairwise(times)]


# --- Anthropic ---------------------------------------------------------------------------------------


@pytest.mark.usefixtures("keys")
async def test_anthropic_chat_goes_over_the_messages_api_with_its_headers_and_reads_text_and_usage(
    anthropic: FakeAnthropic,
) -> None:
    anthropic.script("Four.")
    reply = await LLMBackend().complete(_ask(CLAUDE, anthropic.api_base, ANTHROPIC_KEY_ENV))
    assert reply.ok, reply.error
    assert reply.content == "Four."
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) > (0, 0)
    [seen] = anthropic.requests
    assert seen.path == "/v1/messages"
    assert seen.headers["x-api-key"] == ANTHROPIC_KEY
    assert "anthropic-version" in seen.headers
    assert seen.body["model"] == "claude-3-5-haiku-20241022"
    assert "You answer briefly." in json.dumps(seen.body["system"])  # the system prompt is its own field
    assert [m["role"] for m in seen.body["messages"]] == ["user"]
    assert seen.body["max_tokens"] == 64


@pytest.mark.usefixtures("keys")
async def test_anthropic_tool_use_blocks_become_tool_calls_and_results_go_back_as_tool_result_blocks(
    anthropic: FakeAnthropic,
) -> None:
    anthropic.script(ToolUse((("calculator", {"expression": "2+2"}),)), "It is 4.")
    backend = LLMBackend()
    first = await backend.complete(_ask(CLAUDE, anthropic.api_base, ANTHROPIC_KEY_ENV, tools=[CALCULATOR]))
    assert first.ok, first.error
    [call] = first.tool_calls
    assert (call.name, call.arguments) == ("calculator", {"expression": "2+2"})
    follow_up = _ask(CLAUDE, anthropic.api_base, ANTHROPIC_KEY_ENV, tools=[CALCULATOR])
    follow_up = follow_up.model_copy(
        update={
            "messages": [
                *follow_up.messages,
                ChatMessage(role="assistant", content="", tool_calls=first.tool_calls),
                ChatMessage(role="tool", content="4", tool_call_id=call.id, name="calculator"),
            ]
        }
    )
    second = await backend.complete(follow_up)
    assert second.content == "It is 4."
    tools_sent = anthropic.requests[0].body["tools"]
    assert tools_sent[0]["name"] == "calculator"
    assert tools_sent[0]["input_schema"]["required"] == ["expression"]
    blocks = [b for m in anthropic.requests[1].body["messages"] for b in m["content"] if isinstance(b, dict)]
    assert {"type": "tool_use", "id": call.id, "name": "calculator", "input": {"expression": "2+2"}}.items() <= next(
        b for b in blocks if b["type"] == "tool_use"
    ).items()
    result = next(b for b in blocks if b["type"] == "tool_result")
    assert result["tool_use_id"] == call.id


@pytest.mark.usefixtures("keys")
async def test_anthropic_structured_output_is_a_forced_tool_whose_input_is_the_answer(
    anthropic: FakeAnthropic,
) -> None:
    anthropic.script(Structured({"answer": "4"}))
    reply = await LLMBackend().complete(
        _ask(CLAUDE, anthropic.api_base, ANTHROPIC_KEY_ENV, output_schema=ANSWER_SCHEMA)
    )
    assert reply.ok, reply.error
    assert json.loads(reply.content) == {"answer": "4"}
    body = anthropic.requests[0].body
    assert body["tool_choice"]["type"] == "tool"
    [tool] = body["tools"]
    assert tool["name"] == body["tool_choice"]["name"]
    assert tool["input_schema"]["properties"] == ANSWER_SCHEMA["properties"]


@pytest.mark.usefixtures("keys")
async def test_anthropic_529_429_and_503_are_retried_after_the_delay_each_asks_for(anthropic: FakeAnthropic) -> None:
    anthropic.script(Overloaded(retry_after="1"), RateLimited(retry_after_ms="400"), Unavailable(), "Finally.")
    reply = await LLMBackend(retries=3, backoff_s=0.2).complete(_ask(CLAUDE, anthropic.api_base, ANTHROPIC_KEY_ENV))
    assert reply.ok, reply.error
    assert reply.content == "Finally."
    gaps = _gaps([r.at for r in anthropic.requests])
    assert len(gaps) == 3
    assert gaps[0] >= 1.0  # Retry-After: 1 (seconds)
    assert gaps[1] >= 0.4  # retry-after-ms: 400
    assert gaps[2] >= 0.1  # no header: the jittered back-off (0.8 s at attempt 3, at least half of it)


@pytest.mark.usefixtures("keys")
async def test_anthropic_errors_that_stay_are_transient_replies_after_the_retries(anthropic: FakeAnthropic) -> None:
    anthropic.script(Overloaded(), Overloaded(), Overloaded())
    reply = await LLMBackend(retries=2, backoff_s=0.05).complete(_ask(CLAUDE, anthropic.api_base, ANTHROPIC_KEY_ENV))
    assert not reply.ok
    assert reply.error_kind == "transient"
    assert "overloaded" in (reply.error or "")
    assert len(anthropic.requests) == 3


# --- Gemini ------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("keys")
async def test_gemini_chat_goes_to_generate_content_with_the_key_header_and_reads_parts_and_usage(
    gemini: FakeGemini,
) -> None:
    gemini.script("Four.")
    reply = await LLMBackend().complete(_ask(GEMINI, gemini.api_base, GEMINI_KEY_ENV))
    assert reply.ok, reply.error
    assert reply.content == "Four."
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) > (0, 0)
    [seen] = gemini.requests
    assert seen.path == "/v1beta/models/gemini-2.0-flash:generateContent"
    assert seen.headers["x-goog-api-key"] == GEMINI_KEY
    assert "You answer briefly." in json.dumps(seen.body["system_instruction"])
    assert seen.body["contents"][-1] == {"role": "user", "parts": [{"text": "What is two plus two?"}]}
    assert seen.body["generationConfig"]["max_output_tokens"] == 64


@pytest.mark.usefixtures("keys")
async def test_gemini_function_call_parts_become_tool_calls(gemini: FakeGemini) -> None:
    gemini.script(ToolUse((("calculator", {"expression": "6*7"}),)))
    reply = await LLMBackend().complete(_ask(GEMINI, gemini.api_base, GEMINI_KEY_ENV, tools=[CALCULATOR]))
    assert reply.ok, reply.error
    [call] = reply.tool_calls
    assert (call.name, call.arguments) == ("calculator", {"expression": "6*7"})
    [declared] = gemini.requests[0].body["tools"][0]["function_declarations"]
    assert declared["name"] == "calculator"


@pytest.mark.usefixtures("keys")
async def test_gemini_structured_output_sends_the_schema_as_response_schema(gemini: FakeGemini) -> None:
    gemini.script(Structured({"answer": "4"}))
    schema = {**ANSWER_SCHEMA, "additionalProperties": False, "title": "Answer"}
    reply = await LLMBackend().complete(_ask(GEMINI, gemini.api_base, GEMINI_KEY_ENV, output_schema=schema))
    assert reply.ok, reply.error
    assert json.loads(reply.content) == {"answer": "4"}
    config = gemini.requests[0].body["generationConfig"]
    assert config["response_mime_type"] == "application/json"
    sent = config["response_schema"]
    assert sent["properties"] == ANSWER_SCHEMA["properties"]
    assert "additionalProperties" not in sent  # Gemini refuses it: provider_schema drops it


@pytest.mark.usefixtures("keys")
async def test_gemini_429_and_503_are_retried_with_and_without_retry_after(gemini: FakeGemini) -> None:
    gemini.script(RateLimited(), Unavailable(retry_after="1"), RateLimited(retry_after_ms="300"), "Done.")
    reply = await LLMBackend(retries=3, backoff_s=0.1).complete(_ask(GEMINI, gemini.api_base, GEMINI_KEY_ENV))
    assert reply.ok, reply.error
    assert reply.content == "Done."
    gaps = _gaps([r.at for r in gemini.requests])
    assert len(gaps) == 3
    assert gaps[0] >= 0.05  # no header: at least half of the 0.1 s back-off
    assert gaps[1] >= 1.0
    assert gaps[2] >= 0.3


# --- OpenAI: the same rules --------------------------------------------------------------------------


async def test_openai_retry_after_as_an_http_date_and_in_ms_is_honoured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CA_TEST_OPENAI_KEY", "sk-fake-0123456789abcdef")
    # An HTTP date has whole seconds: two seconds from now, rounded up, is a moment the retry must wait for.
    when = math.ceil(time.time()) + 2
    with FakeOpenAI("ok") as fake:
        fake.script(
            ErrorReply.unavailable(("Retry-After", email.utils.formatdate(when, usegmt=True))),
            ErrorReply.unavailable(("retry-after-ms", "250")),
            "answered",
        )
        request = _ask("openai/gpt-4o-mini", fake.api_base, "CA_TEST_OPENAI_KEY")
        reply = await LLMBackend(retries=2).complete(request)
        times = [r.at for r in fake.requests]
    assert reply.ok, reply.error
    assert reply.content == "answered"
    assert times[1] >= when
    assert times[2] - times[1] >= 0.25


async def test_a_retry_after_longer_than_the_maximum_waits_the_maximum(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CA_TEST_OPENAI_KEY", "sk-fake-0123456789abcdef")
    with FakeOpenAI("ok") as fake:
        fake.script(ErrorReply.rate_limited(retry_after_s=3600), "answered")
        reply = await LLMBackend(retries=1, max_retry_after_s=0.5).complete(
            _ask("openai/gpt-4o-mini", fake.api_base, "CA_TEST_OPENAI_KEY")
        )
        times = [r.at for r in fake.requests]
    assert reply.content == "answered"
    assert times[1] - times[0] >= 0.5


# --- a whole run through the gateway ------------------------------------------------------------------

AGENT = """
schema_version: "1.0"
flow: {name: claude_agent}
state:
  fields:
    question: {type: str, required: true}
    answer: {type: str, default: ""}
nodes:
  - id: solve
    prompt: "Use the calculator: {state.question}"
    tools: [calculator]
    outputs: [answer]
    output_schema: {type: object, fields: [{name: answer, type: str}]}
edges: [{from: START, to: solve}, {from: solve, to: END}]
config:
  llm:
    model: MODEL
    api_base: "API_BASE"
    api_key_env: KEY_ENV
"""


@pytest.mark.usefixtures("keys")
async def test_an_agent_flow_on_anthropic_runs_through_the_gateway_with_a_rate_limit_on_the_way(
    anthropic: FakeAnthropic, settings: Settings, tmp_path: Path
) -> None:
    anthropic.script(
        RateLimited(retry_after="1"), ToolUse((("calculator", {"expression": "6*7"}),)), Structured({"answer": "42"})
    )
    body = AGENT.replace("MODEL", CLAUDE).replace("API_BASE", anthropic.api_base).replace("KEY_ENV", ANTHROPIC_KEY_ENV)
    flow = write_flow(tmp_path / "claude_agent.yaml", body)
    async with LocalStack(settings, plans(flow), embedded=False) as stack:
        assert stack.client is not None
        log = await EventLog().start(stack.client)
        result = await run_flow(stack.client, "claude_agent", {"question": "six times seven?"})
        await log.wait_for("run.finished")
    assert result["status"] == "succeeded", result
    assert result["state"]["answer"] == "42"
    [tool] = log.of("tool.finished")
    assert tool.data.result == {"expression": "6*7", "result": 42}
    times = [r.at for r in anthropic.requests]
    assert len(times) == 3
    assert times[1] - times[0] >= 1.0


async def test_a_backend_for_a_litellm_model_imports_litellm_before_it_is_ready_and_a_mock_one_never_does() -> None:
    mock = LLMBackend(model_override="mock/10ms")
    await mock.warm()
    assert mock._litellm is None
    real = LLMBackend(model_override=CLAUDE)
    await real.warm()
    assert real._litellm is not None
