"""The built-in mock model, the node code around the LLM, and the trigger rendezvous."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from actors.flow.llm import ChatMessage, LLMReply, LLMRequest
from actors.flow.node_exec import NodeFailed, NodePorts, choose_model, parse_content, run_llm_node
from actors.llm.backend import LLMBackend
from actors.llm.mock import MockScript, mock_latency_s, mock_output
from actors.scheduler.rendezvous import Rendezvous
from configs import load_flow, load_flow_text
from tests.conftest import SEEDS

SCHEMA = {
    "type": "object",
    "properties": {
        "bio": {"type": "string"},
        "score": {"type": "integer"},
        "ratio": {"type": "number"},
        "ok": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "inner": {"type": "object", "properties": {"n": {"type": "integer"}}},
    },
}


def test_mock_output_satisfies_the_schema_and_depends_on_the_prompt() -> None:
    value = mock_output(SCHEMA, node="n", prompt="p1")
    assert isinstance(value["bio"], str)
    assert isinstance(value["score"], int)
    assert isinstance(value["ratio"], float)
    assert isinstance(value["ok"], bool)
    assert all(isinstance(t, str) for t in value["tags"])
    assert isinstance(value["inner"]["n"], int)
    assert mock_output(SCHEMA, node="n", prompt="p1") == value
    assert mock_output(SCHEMA, node="n", prompt="p2") != value
    assert mock_output(SCHEMA, node="m", prompt="p1") != value


@pytest.mark.parametrize(
    ("model", "latency"), [("mock", 0.0), ("mock/250ms", 0.25), ("gpt-4o", None), ("mock/x", None)]
)
def test_mock_model_names_carry_their_latency(model: str, latency: float | None) -> None:
    assert mock_latency_s(model) == latency


def test_a_mock_script_is_used_in_order_per_run_and_its_last_entry_repeats(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("n:\n  - {x: 'first {item}'}\n  - {x: 'then {state.topic}'}\n")
    script = MockScript.load(path)
    state, extra = {"topic": "T"}, {"item": "I"}
    assert script.next_output("r1", "n", state, extra) == {"x": "first I"}
    assert script.next_output("r1", "n", state, extra) == {"x": "then T"}
    assert script.next_output("r1", "n", state, extra) == {"x": "then T"}
    assert script.next_output("r2", "n", state, extra) == {"x": "first I"}
    assert script.next_output("r1", "other", state, extra) is None


def test_a_mock_script_must_map_nodes_to_lists(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("n: {x: 1}\n")
    with pytest.raises(ValueError, match="lists of outputs"):
        MockScript.load(path)


async def test_the_mock_backend_answers_json_with_usage_and_latency() -> None:
    backend = LLMBackend()
    request = LLMRequest(
        model="mock/20ms", messages=[ChatMessage(role="user", content="hello there")], output_schema=SCHEMA, node="n"
    )
    reply = await backend.complete(request)
    assert reply.ok
    assert parse_content(reply.content)["bio"]
    assert reply.usage.prompt_tokens == 2
    assert reply.latency_ms >= 20


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ('```json\n{"a": 1}\n```', {"a": 1}),
        ('Sure! {"a": 1} Hope this helps.', {"a": 1}),
        ('"plain"', "plain"),
    ],
)
def test_llm_answers_are_parsed_with_fences_and_prose_tolerated(content: str, expected: object) -> None:
    assert parse_content(content) == expected


def test_an_answer_without_json_says_where_parsing_failed() -> None:
    with pytest.raises(ValueError, match="not JSON"):
        parse_content("no json here")


def test_the_model_comes_from_override_then_node_then_flow_then_default() -> None:
    spec = load_flow(SEEDS / "article_writer.yaml").spec
    write = spec.node("write")
    assert choose_model(spec, write, "mock").model == "mock"
    assert choose_model(spec, write, None).model == "gemini-2.5-flash-lite"
    echo = load_flow(SEEDS / "echo.yaml").spec
    assert choose_model(echo, echo.node("echo"), None).model == "mock"
    text = (SEEDS / "echo.yaml").read_text() + "config:\n  llm: {provider: ollama, model: llama3.2}\n"
    local = load_flow_text(text).spec
    assert choose_model(local, local.node("echo"), None).model == "ollama_chat/llama3.2"


class ScriptedLLM:
    """An in-process `LLMClient` answering from a list (the port's fake implementation)."""

    def __init__(self, answers: list[str]) -> None:
        self.answers = answers
        self.requests: list[LLMRequest] = []

    async def complete(self, request: LLMRequest) -> LLMReply:
        self.requests.append(request)
        return LLMReply(content=self.answers[min(len(self.requests), len(self.answers)) - 1])


async def test_a_bad_answer_is_sent_back_with_its_validation_error() -> None:
    spec = load_flow(SEEDS / "article_writer.yaml").spec
    llm = ScriptedLLM(['{"article": "x", "word_count": "many"}', '{"article": "x", "word_count": 3}'])
    retries: list[tuple[int, str]] = []

    async def on_retry(attempt: int, problem: str) -> None:
        retries.append((attempt, problem))

    outcome = await run_llm_node(
        spec, spec.node("write"), {"topic": "t", "research": "r"}, NodePorts(llm=llm, on_retry=on_retry), max_retries=3
    )
    assert outcome.outputs == {"article": "x", "word_count": 3}
    assert outcome.attempts == 2
    assert retries[0][0] == 1
    assert "word_count" in retries[0][1]
    second = llm.requests[1].messages
    assert second[-2].role == "assistant"
    assert "word_count" in second[-1].content
    assert "Based on this research about t" in llm.requests[0].messages[1].content


async def test_a_node_fails_after_its_retries_are_used_up() -> None:
    spec = load_flow(SEEDS / "echo.yaml").spec
    llm = ScriptedLLM(["not json"])
    with pytest.raises(NodeFailed, match="after 2 attempts"):
        await run_llm_node(spec, spec.node("echo"), {"message": "m"}, NodePorts(llm=llm), max_retries=1)
    assert len(llm.requests) == 2


async def test_a_request_and_its_stored_trigger_meet_whichever_comes_first() -> None:
    rendezvous = Rendezvous()
    rendezvous.announce("d1", {"run_id": "early"})
    assert await rendezvous.wait("d1", timeout_s=1) == {"run_id": "early"}
    waiting = asyncio.create_task(rendezvous.wait("d2", timeout_s=1))
    await asyncio.sleep(0)  # one turn of the loop: the task is now waiting on d2, so the answer comes late
    rendezvous.announce("d2", {"run_id": "late"})
    assert await waiting == {"run_id": "late"}
    with pytest.raises(TimeoutError):
        await rendezvous.wait("d3", timeout_s=0.05)
