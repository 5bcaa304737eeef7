"""The gateway's real litellm HTTP path, against a local OpenAI-compatible fake server (no internet)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.cli.console import trigger_and_wait
from actors.flow import load_flows
from actors.flow.llm import ChatMessage, LLMRequest
from actors.launch.stack import LocalStack
from actors.llm.backend import LLMBackend
from configs import Settings
from tests.fakes.openai_server import ErrorReply, FakeOpenAI, serve

# Before anything imports litellm: otherwise its import fetches a price map from the internet.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

# litellm 1.80.0 serializes each response for its own success logging (a background task, even with no
# callbacks) and its `Message`/`Choices` union trips pydantic's serializer check (BerriAI/litellm#11759,
# fixed upstream after 1.80). As an error, the warning is caught inside litellm and logged as an ERROR.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning"),
    pytest.mark.usefixtures("litellm_state", "no_internet"),
]

MODEL = "openai/gpt-4o-mini"
KEY_ENV = "CA_TEST_FAKE_OPENAI_KEY"
KEY = "sk-fake-0123456789abcdef"


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    yield from serve(default_content="hello from the fake")


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_ENV, KEY)
    return KEY


def _request(fake: FakeOpenAI) -> LLMRequest:
    return LLMRequest(
        model=MODEL,
        messages=[
            ChatMessage(role="system", content="You answer briefly."),
            ChatMessage(role="user", content="Say hello."),
        ],
        temperature=0.25,
        max_tokens=64,
        api_base=fake.api_base,
        api_key_env=KEY_ENV,
        timeout_s=10.0,
        node="greet",
    )


async def test_a_completion_goes_over_http_with_the_request_settings_and_the_key_from_the_environment(
    fake: FakeOpenAI, api_key: str
) -> None:
    fake.script("Hello, world of actors")

    reply = await LLMBackend().complete(_request(fake))

    assert reply.ok, reply.error
    assert reply.content == "Hello, world of actors"
    assert reply.model.endswith("gpt-4o-mini")
    # The fake counts words: 5 in the two messages, 4 in the answer.
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (5, 4)
    assert reply.latency_ms > 0
    assert reply.cost_usd > 0, "the bundled price map (LITELLM_LOCAL_MODEL_COST_MAP) knows gpt-4o-mini"
    [seen] = fake.requests
    assert seen.path == "/v1/chat/completions"
    assert seen.model == "gpt-4o-mini"
    assert seen.messages == [
        {"role": "system", "content": "You answer briefly."},
        {"role": "user", "content": "Say hello."},
    ]
    assert seen.body["temperature"] == 0.25
    assert seen.body["max_tokens"] == 64
    assert not seen.stream
    assert seen.authorization == f"Bearer {api_key}"


async def test_the_api_key_never_appears_in_the_reply(fake: FakeOpenAI, api_key: str) -> None:
    fake.script("fine", ErrorReply.unauthorized())
    backend = LLMBackend()

    replies = [await backend.complete(_request(fake)) for _ in range(2)]

    assert [r.ok for r in replies] == [True, False]
    for reply in replies:
        assert api_key not in reply.model_dump_json()


async def test_a_missing_key_variable_is_an_error_naming_it_and_nothing_is_sent(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)

    reply = await LLMBackend().complete(_request(fake))

    assert reply.error_kind == "permanent"
    assert reply.error is not None
    assert KEY_ENV in reply.error
    assert fake.requests == []


@pytest.mark.parametrize(
    ("answer", "exception", "kind"),
    [
        pytest.param(ErrorReply.server_error(), "InternalServerError", "transient", id="500"),
        pytest.param(ErrorReply.rate_limited(retry_after_s=1), "RateLimitError", "transient", id="429"),
        pytest.param(ErrorReply.unauthorized(), "AuthenticationError", "permanent", id="401"),
    ],
)
async def test_provider_errors_become_error_replies_that_say_whether_a_retry_may_help(
    fake: FakeOpenAI, api_key: str, answer: ErrorReply, exception: str, kind: str
) -> None:
    fake.script(answer)

    reply = await LLMBackend(retries=0).complete(_request(fake))

    assert not reply.ok
    assert reply.error_kind == kind
    assert reply.error is not None
    assert reply.error.startswith(f"{exception}:")
    assert answer.message in reply.error
    # Retries belong to the gateway (off here) and the worker: litellm and the OpenAI SDK must not retry.
    assert len(fake.requests) == 1
    assert fake.pending == 0


async def test_litellm_reassembles_a_streamed_answer_from_server_sent_events(fake: FakeOpenAI) -> None:
    import litellm

    content = "Streams arrive in small pieces, then [DONE]."
    fake.script(content)

    stream = await litellm.acompletion(
        model=MODEL,
        messages=[{"role": "user", "content": "Stream something."}],
        api_base=fake.api_base,
        api_key=KEY,
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
    assert len([p for p in pieces if p]) > 1, "the answer should have come in several chunks"
    assert finish_reasons == ["stop"]
    assert usage is not None
    assert usage.completion_tokens == len(content.split())
    [seen] = fake.requests
    assert seen.stream
    assert seen.authorization == f"Bearer {KEY}"


FLOW = """\
schema_version: "1.0"
flow:
  name: fake_openai_flow
  description: Two LLM nodes answered by the local fake OpenAI server
state:
  fields:
    topic: {type: str, required: true}
    keyword: {type: str, default: ""}
    title: {type: str, default: ""}
nodes:
  - id: keyword
    prompt: "Give one keyword for {state.topic}."
    outputs: [keyword]
    output_schema: {type: object, fields: [{name: keyword, type: str}]}
  - id: title
    prompt: "Write a title using the keyword {state.keyword}."
    outputs: [title]
    output_schema: {type: object, fields: [{name: title, type: str}]}
edges:
  - {from: START, to: keyword}
  - {from: keyword, to: title}
  - {from: title, to: END}
config:
  llm:
    model: openai/gpt-4o-mini
    api_base: "{api_base}"
    api_key_env: {key_env}
    temperature: 0.1
    max_tokens: 100
    timeout: 10
  execution:
    timeout: 30
    max_retries: 2
"""


async def test_a_flow_runs_through_the_stack_against_the_fake_and_recovers_from_an_invalid_answer(
    fake: FakeOpenAI, api_key: str, settings: Settings, tmp_path: Path
) -> None:
    flow_file = tmp_path / "flow.yaml"
    flow_file.write_text(FLOW.replace("{api_base}", fake.api_base).replace("{key_env}", KEY_ENV))
    flows = load_flows([flow_file])
    assert flows.errors == []
    fake.script(
        "I think the keyword is otters.",  # not JSON: the worker must feed the error back and ask again
        json.dumps({"keyword": "otters"}),
        json.dumps({"title": "Otters Hold Hands"}),
    )

    async with LocalStack(settings, flows.plans, embedded=False) as stack:
        assert stack.client is not None
        result = await trigger_and_wait(
            stack.client, "fake_openai_flow", {"topic": "rivers"}, wait=True, timeout_s=15, progress=False
        )

    assert result is not None
    assert result["status"] == "succeeded", result.get("error")
    assert result["state"]["keyword"] == "otters"
    assert result["state"]["title"] == "Otters Hold Hands"
    assert [s["node"] for s in result["steps"]] == ["keyword", "title"]
    first, retry, second = fake.requests
    assert {r.model for r in fake.requests} == {"gpt-4o-mini"}
    assert all(r.authorization == f"Bearer {api_key}" for r in fake.requests)
    assert first.body["temperature"] == 0.1
    assert first.body["max_tokens"] == 100
    assert "rivers" in first.messages[-1]["content"]
    # The retry repeats the conversation, then the invalid answer and the validation error.
    assert retry.messages[: len(first.messages)] == first.messages
    assert retry.messages[-2] == {"role": "assistant", "content": "I think the keyword is otters."}
    assert retry.messages[-1]["role"] == "user"
    assert "invalid" in retry.messages[-1]["content"]
    assert "not JSON" in retry.messages[-1]["content"]
    assert "otters" in second.messages[-1]["content"]
    assert fake.pending == 0
