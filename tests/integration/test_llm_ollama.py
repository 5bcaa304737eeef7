"""The gateway's litellm ``ollama_chat/<model>`` path, against a local fake speaking Ollama's own API (no internet).

What litellm 1.80.0 does with Ollama, as these tests pin it:

* chat goes to ``POST {api_base}/api/chat`` with ``stream: false``, the model without ``ollama_chat/``,
  sampling settings under ``options`` (``max_tokens`` becomes ``num_predict``); usage comes from the
  answer's ``prompt_eval_count`` / ``eval_count``.
* Model details (``POST /api/show``: does the template mention tools? the context length, the price) are
  asked of ``OLLAMA_API_BASE`` (default ``http://localhost:11434``), never of the request's ``api_base``;
  so the gateway asks the request's own Ollama itself and hands litellm the facts (`actors.llm.ollama`).
  With tools and no tool-capable template there, litellm puts the tools into the system prompt, asks for
  ``format: "json"`` and reads the answer as a function call. So the fixture points ``OLLAMA_API_BASE`` at
  the fake, as a deployment with a non-default Ollama must.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from actors.flow.llm import ChatMessage, LLMRequest, ToolCall
from actors.launch import supervisor
from actors.llm.backend import LLMBackend
from tests.fakes.ollama_server import FakeModel, FakeOllama, OllamaError, ToolCallsReply

# Before anything imports litellm: otherwise its import fetches a price map from the internet.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

# litellm 1.80.0's success logging trips pydantic's serializer check (BerriAI/litellm#11759); see test_llm_litellm.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning"),
    pytest.mark.usefixtures("litellm_state", "no_internet"),
]

MODEL = "ollama_chat/llama3.2"
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["C", "F"]}},
            "required": ["city"],
        },
    },
}
TITLE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"title": {"type": "string"}},
    "required": ["title"],
    "additionalProperties": False,
}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOllama]:
    with FakeOllama(default_content="hello from the fake ollama") as fake:
        monkeypatch.setenv("OLLAMA_API_BASE", fake.base_url)
        yield fake


def _request(fake: FakeOllama, *messages: ChatMessage, **fields: Any) -> LLMRequest:
    return LLMRequest(
        model=MODEL,
        messages=list(messages)
        or [
            ChatMessage(role="system", content="You answer briefly."),
            ChatMessage(role="user", content="Say hello."),
        ],
        api_base=fake.base_url,
        timeout_s=10.0,
        node="greet",
        **fields,
    )


async def test_a_completion_posts_to_api_chat_and_token_usage_comes_from_ollamas_eval_counts(
    fake: FakeOllama,
) -> None:
    fake.script("Hello, world of actors")

    reply = await LLMBackend().complete(_request(fake, temperature=0.25, max_tokens=64))

    assert reply.ok, reply.error
    assert reply.content == "Hello, world of actors"
    assert reply.tool_calls == []
    assert reply.model == MODEL
    # The fake counts words: 5 in the two messages (prompt_eval_count), 4 in the answer (eval_count).
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (5, 4)
    assert reply.cost_usd == 0.0, "a local model costs nothing"
    [seen] = fake.chat_requests
    assert (seen.method, seen.path) == ("POST", "/api/chat")
    assert seen.model == "llama3.2", "the provider prefix stays in litellm"
    assert [(m["role"], m["content"]) for m in seen.messages] == [
        ("system", "You answer briefly."),
        ("user", "Say hello."),
    ]
    assert seen.options == {"temperature": 0.25, "num_predict": 64}
    assert seen.body["stream"] is False
    assert "format" not in seen.body
    assert "tools" not in seen.body
    assert "authorization" not in seen.headers, "no key configured, none sent"
    assert fake.pending == 0


async def test_litellm_asks_ollama_api_base_for_model_details_not_the_requests_api_base(
    fake: FakeOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    import litellm

    # A gateway in this process may have registered the model's facts (actors.llm.ollama): forget them.
    for name in ("ollama/llama3.2", "ollama_chat/llama3.2"):
        monkeypatch.delitem(litellm.model_cost, name, raising=False)
    with FakeOllama(models=["llama3.2:latest"]) as decoy:
        monkeypatch.setenv("OLLAMA_API_BASE", decoy.base_url)

        await litellm.acompletion(
            model=MODEL,
            messages=[{"role": "user", "content": "Weather?"}],
            api_base=fake.base_url,
            tools=[WEATHER_TOOL],
            num_retries=0,
        )

        assert {r.path for r in fake.requests} == {"/api/chat"}
        assert decoy.chat_requests == []
        shows = [r for r in decoy.requests if r.path == "/api/show"]
    assert shows, "litellm looks the model up (for its capabilities) where OLLAMA_API_BASE points"
    assert {r.model for r in shows} == {"llama3.2"}


async def test_litellm_sends_a_json_schema_response_format_to_ollama_as_format(fake: FakeOllama) -> None:
    import litellm

    fake.script('{"title": "Otters"}')

    response = await litellm.acompletion(
        model=MODEL,
        messages=[{"role": "user", "content": "A title, please."}],
        api_base=fake.base_url,
        response_format={"type": "json_schema", "json_schema": {"name": "output", "schema": TITLE_SCHEMA}},
        num_retries=0,
    )

    assert json.loads(response.choices[0].message.content) == {"title": "Otters"}
    [seen] = fake.chat_requests
    assert seen.body["format"] == TITLE_SCHEMA
    assert seen.options == {}


async def test_the_gateway_sends_an_output_schema_to_ollama_as_format(fake: FakeOllama) -> None:
    # Ollama's structured outputs: the JSON schema goes as `format`; the answer is still validated locally.
    fake.script('{"title": "Otters"}')

    reply = await LLMBackend().complete(_request(fake, output_schema=TITLE_SCHEMA))

    assert reply.ok, reply.error
    assert json.loads(reply.content) == {"title": "Otters"}
    [seen] = fake.chat_requests
    assert seen.body.get("format") == TITLE_SCHEMA


async def test_a_tool_calling_turn_comes_back_as_tool_calls_with_parsed_arguments(fake: FakeOllama) -> None:
    fake.script(ToolCallsReply((("get_weather", {"city": "Paris", "unit": "C"}), ("get_weather", {"city": "Oslo"}))))

    reply = await LLMBackend().complete(
        _request(fake, ChatMessage(role="user", content="Weather in Paris and Oslo?"), tools=[WEATHER_TOOL])
    )

    assert reply.ok, reply.error
    assert reply.content == ""
    assert [(c.name, c.arguments) for c in reply.tool_calls] == [
        ("get_weather", {"city": "Paris", "unit": "C"}),
        ("get_weather", {"city": "Oslo"}),
    ]
    # Ollama sends no call ids: litellm makes up a distinct one per call.
    ids = [c.id for c in reply.tool_calls]
    assert all(ids)
    assert len(set(ids)) == 2
    [seen] = fake.chat_requests
    assert seen.body["tools"] == [WEATHER_TOOL], "tools go to Ollama in the OpenAI function format, unchanged"
    assert "format" not in seen.body
    assert seen.messages[0]["content"] == "Weather in Paris and Oslo?", "no tool prompt injected"


async def test_tools_for_a_model_without_a_tool_template_are_prompted_for_and_the_json_answer_becomes_a_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with FakeOllama(models=[FakeModel("llama3.2:latest", tools=False)]) as fake:
        monkeypatch.setenv("OLLAMA_API_BASE", fake.base_url)
        fake.script(json.dumps({"name": "get_weather", "arguments": {"city": "Paris"}}))

        reply = await LLMBackend().complete(
            _request(
                fake,
                ChatMessage(role="system", content="Be brief."),
                ChatMessage(role="user", content="Weather in Paris?"),
                tools=[WEATHER_TOOL],
            )
        )

    assert reply.ok, reply.error
    assert [(c.name, c.arguments) for c in reply.tool_calls] == [("get_weather", {"city": "Paris"})]
    [seen] = fake.chat_requests
    assert seen.body["format"] == "json"
    assert "tools" not in seen.body
    system = seen.messages[0]["content"]
    assert system.startswith("Be brief.")
    assert "get_weather" in system
    assert "JSON" in system


async def test_a_tool_result_goes_back_as_a_tool_turn_but_litellm_drops_the_assistants_tool_calls(
    fake: FakeOllama,
) -> None:
    fake.script("It is sunny in Paris.")
    call = ToolCall(id="call_1", name="get_weather", arguments={"city": "Paris"})

    reply = await LLMBackend().complete(
        _request(
            fake,
            ChatMessage(role="user", content="Weather in Paris?"),
            ChatMessage(role="assistant", content="", tool_calls=[call]),
            ChatMessage(role="tool", content='{"sky": "sunny"}', tool_call_id="call_1", name="get_weather"),
            tools=[WEATHER_TOOL],
        )
    )

    assert reply.ok, reply.error
    assert reply.content == "It is sunny in Paris."
    [seen] = fake.chat_requests
    assert [(m["role"], m["content"]) for m in seen.messages] == [
        ("user", "Weather in Paris?"),
        ("assistant", ""),
        ("tool", '{"sky": "sunny"}'),
    ]
    # litellm 1.80.0 converts the assistant's tool_calls to Ollama's shape but never copies them into the
    # message it sends, and drops the tool turn's id and name (BerriAI/litellm#26094, fixed after 1.80).
    assistant, tool = seen.messages[1], seen.messages[2]
    assert "tool_calls" not in assistant
    assert not {"tool_call_id", "tool_name", "name"} & tool.keys()


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(OllamaError.server_error(), id="500"),
        pytest.param(OllamaError.overloaded(), id="503"),
    ],
)
async def test_an_ollama_server_error_is_an_error_reply_worth_retrying_after_exactly_one_request(
    fake: FakeOllama, error: OllamaError
) -> None:
    fake.script(error)

    reply = await LLMBackend(retries=0).complete(_request(fake))

    assert reply.error_kind == "transient"
    assert reply.error is not None
    # litellm maps every Ollama HTTP error to APIConnectionError (status 500), whatever the real status.
    assert reply.error.startswith("APIConnectionError:")
    assert error.message in reply.error
    assert len(fake.chat_requests) == 1
    assert fake.pending == 0


async def test_a_model_that_is_not_pulled_is_an_error_not_worth_retrying(fake: FakeOllama) -> None:
    reply = await LLMBackend(retries=0).complete(_request(fake).model_copy(update={"model": "ollama_chat/mistral"}))

    assert not reply.ok
    assert reply.error is not None
    assert "mistral" in reply.error
    assert "not found" in reply.error
    assert reply.error_kind == "permanent"


async def test_litellm_reassembles_a_streamed_ndjson_answer_with_usage_from_the_last_line(fake: FakeOllama) -> None:
    import litellm

    content = "Streams arrive in small pieces, then done."
    fake.script(content)

    stream = await litellm.acompletion(
        model=MODEL,
        messages=[{"role": "user", "content": "Stream something now."}],
        api_base=fake.base_url,
        stream=True,
        stream_options={"include_usage": True},
        num_retries=0,
    )
    pieces: list[str] = []
    finish_reasons: list[str] = []
    usage: Any = None
    async for chunk in stream:
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            if choice.finish_reason:
                finish_reasons.append(choice.finish_reason)
        usage = getattr(chunk, "usage", None) or usage

    assert "".join(pieces) == content
    assert len([p for p in pieces if p]) > 1, "the answer should have come in several lines"
    assert finish_reasons == ["stop"]
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (3, len(content.split()))
    [seen] = fake.chat_requests
    assert seen.body["stream"] is True


def test_up_chooses_the_first_model_ollama_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOllama(models=["qwen2.5:7b", "llama3.2:latest"]) as fake:
        monkeypatch.setattr(supervisor, "OLLAMA_URL", fake.base_url)

        choice = supervisor.choose_llm("auto")

        assert (choice.override, choice.default) == (None, "ollama_chat/qwen2.5:7b")
        assert choice.why == f"flows that name no model: the local Ollama at {fake.base_url}"
        assert fake.paths() == ["GET /api/tags"]


def test_up_falls_back_to_the_mock_model_when_ollama_has_nothing_pulled(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOllama(models=[]) as fake:
        monkeypatch.setattr(supervisor, "OLLAMA_URL", fake.base_url)

        choice = supervisor.choose_llm("auto")

    assert (choice.override, choice.default) == (None, "mock")
    assert "has none pulled" in choice.why


def test_up_falls_back_to_the_mock_model_when_no_ollama_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOllama() as fake:
        url = fake.base_url
    # The fake is closed: its port now refuses connections.
    monkeypatch.setattr(supervisor, "OLLAMA_URL", url)

    choice = supervisor.choose_llm("auto")

    assert (choice.override, choice.default) == (None, "mock")
    assert f"no Ollama answers at {url}" in choice.why


def test_up_llm_names_a_model_for_every_node_or_keeps_each_flows_own() -> None:
    assert supervisor.choose_llm("openai/gpt-4o-mini").override == "openai/gpt-4o-mini"
    own = supervisor.choose_llm("flow")
    assert (own.override, own.default) == (None, None)


async def test_the_gateway_asks_each_requests_own_ollama_for_model_facts_never_a_process_wide_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with (
        FakeOllama(models=[FakeModel("llama3.2:latest", tools=False)]) as decoy,
        FakeOllama(models=[FakeModel("llama3.2:latest", tools=True)]) as tools_ollama,
        FakeOllama(models=[FakeModel("llama3.2:latest", tools=False)]) as plain_ollama,
    ):
        monkeypatch.setenv("OLLAMA_API_BASE", decoy.base_url)  # what litellm alone would ask
        tools_ollama.script(ToolCallsReply((("get_weather", {"city": "Paris"}),)))
        plain_ollama.script(json.dumps({"name": "get_weather", "arguments": {"city": "Oslo"}}))
        backend = LLMBackend()
        ask = [ChatMessage(role="user", content="Weather?")]

        native = await backend.complete(_request(tools_ollama, *ask, tools=[WEATHER_TOOL]))
        prompted = await backend.complete(_request(plain_ollama, *ask, tools=[WEATHER_TOOL]))

        assert native.ok, native.error
        assert prompted.ok, prompted.error
        assert tools_ollama.chat_requests[0].body["tools"] == [WEATHER_TOOL], "its template takes tools: native"
        assert plain_ollama.chat_requests[0].body["format"] == "json", "no tool template: litellm prompts for JSON"
        assert {r.path for r in tools_ollama.requests} == {"/api/show", "/api/chat"}
        assert decoy.requests == [], "the process-wide OLLAMA_API_BASE is never asked"
        assert os.environ["OLLAMA_API_BASE"] == decoy.base_url, "and never rewritten from a request"
